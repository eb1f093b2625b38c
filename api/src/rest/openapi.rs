//! The OpenAPI description `GET /rest/v1/` serves, as PostgREST does: Swagger 2.0 of one
//! exposed schema (the first, or `Accept-Profile`) — a path per table and view with its
//! verbs and row filters, a definition per relation (columns with JSON types, formats,
//! defaults, enum labels, primary- and foreign-key notes), a path per function with its
//! arguments. Everything comes from the schema snapshot; nothing is queried.

use fluxbase_migrations::schema::{
    Cardinality, Column, DataType, Function, Relation, RelationKind, Schema, Volatility,
};
use serde_json::{Map, Value, json};

/// The media types requests and responses may use.
const MEDIA: [&str; 4] = [
    "application/json",
    "application/vnd.pgrst.object+json;nulls=stripped",
    "application/vnd.pgrst.object+json",
    "text/csv",
];

/// The Swagger 2.0 document of `schema` in `snapshot`, for an API mounted at `base_path`.
pub fn document(snapshot: &Schema, schema: &str, base_path: &str) -> Value {
    let relations: Vec<&Relation> = snapshot
        .relations_in(schema)
        .filter(|r| !r.is_partition)
        .collect();
    let functions: Vec<&Function> = snapshot
        .functions()
        .iter()
        .filter(|f| f.schema == schema)
        .collect();
    let mut paths = Map::new();
    paths.insert(
        "/".to_owned(),
        json!({"get": {
            "tags": ["Introspection"],
            "summary": "OpenAPI description (this document)",
            "produces": ["application/openapi+json", "application/json"],
            "responses": {"200": {"description": "OK"}},
        }}),
    );
    let mut definitions = Map::new();
    let mut parameters = common_parameters();
    for relation in &relations {
        paths.insert(format!("/{}", relation.name), relation_path(relation));
        definitions.insert(relation.name.clone(), definition(snapshot, relation));
        parameters.insert(
            format!("body.{}", relation.name),
            json!({
                "name": relation.name,
                "description": relation.name,
                "required": false,
                "in": "body",
                "schema": {"$ref": format!("#/definitions/{}", relation.name)},
            }),
        );
        for column in &relation.columns {
            let mut param = json!({
                "name": column.name,
                "required": false,
                "in": "query",
                "type": "string",
            });
            if let Some(comment) = &column.comment {
                param["description"] = json!(comment);
            }
            param["format"] = json!(format_of(&column.data_type));
            parameters.insert(
                format!("rowFilter.{}.{}", relation.name, column.name),
                param,
            );
        }
    }
    for function in &functions {
        paths.insert(format!("/rpc/{}", function.name), function_path(function));
    }
    let description = snapshot
        .namespace(schema)
        .and_then(|n| n.comment.clone())
        .unwrap_or_else(|| {
            format!(
                "The tables, views and functions of the {schema} schema, in PostgREST's language."
            )
        });
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Fluxbase REST API",
            "description": description,
            "version": env!("CARGO_PKG_VERSION"),
        },
        "basePath": base_path,
        "schemes": ["http", "https"],
        "consumes": MEDIA,
        "produces": MEDIA,
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
        "externalDocs": {
            "description": "PostgREST's API reference (the same query language)",
            "url": "https://postgrest.org/en/stable/references/api.html",
        },
    })
}

/// The verbs of a table or view.
fn relation_path(relation: &Relation) -> Value {
    let name = &relation.name;
    let rows: Vec<Value> = relation
        .columns
        .iter()
        .map(|c| param_ref(&format!("rowFilter.{name}.{}", c.name)))
        .collect();
    let tag = |op: Value| {
        let mut op = op;
        op["tags"] = json!([name]);
        if let Some(comment) = &relation.comment {
            op["summary"] = json!(comment.lines().next().unwrap_or_default());
        }
        op
    };
    let with = |extra: &[&str]| {
        let mut params = rows.clone();
        params.extend(extra.iter().map(|p| param_ref(p)));
        params
    };
    let mut verbs = Map::new();
    verbs.insert(
        "get".into(),
        tag(json!({
            "parameters": with(&["select", "order", "range", "rangeUnit", "offset", "limit", "preferCount"]),
            "responses": {
                "200": {"description": "OK", "schema": {
                    "type": "array", "items": {"$ref": format!("#/definitions/{name}")}
                }},
                "206": {"description": "Partial Content"},
            },
        })),
    );
    if relation.insertable {
        verbs.insert(
            "post".into(),
            tag(json!({
                "parameters": [param_ref(&format!("body.{name}")), param_ref("select"), param_ref("preferPost")],
                "responses": {"201": {"description": "Created"}},
            })),
        );
    }
    if relation.updatable {
        verbs.insert(
            "patch".into(),
            tag(json!({
                "parameters": with(&[&format!("body.{name}"), "preferReturn"]),
                "responses": {"204": {"description": "No Content"}},
            })),
        );
    }
    if relation.deletable {
        verbs.insert(
            "delete".into(),
            tag(json!({
                "parameters": with(&["preferReturn"]),
                "responses": {"204": {"description": "No Content"}},
            })),
        );
    }
    Value::Object(verbs)
}

/// The definition of a relation's rows.
fn definition(snapshot: &Schema, relation: &Relation) -> Value {
    let mut properties = Map::new();
    for column in &relation.columns {
        properties.insert(column.name.clone(), property(snapshot, relation, column));
    }
    let required: Vec<&str> = relation
        .columns
        .iter()
        .filter(|c| !c.nullable && !c.has_default() && !c.generated)
        .map(|c| c.name.as_str())
        .collect();
    let mut def = json!({"type": "object", "properties": properties, "required": required});
    if let Some(comment) = &relation.comment {
        def["description"] = json!(comment);
    }
    if relation.kind == RelationKind::View {
        def["x-view"] = json!(true);
    }
    def
}

/// One column's schema, with PostgREST's notes on keys.
fn property(snapshot: &Schema, relation: &Relation, column: &Column) -> Value {
    let ty = &column.data_type;
    let mut prop = Map::new();
    if let Some(t) = json_type(ty) {
        prop.insert("type".into(), json!(t));
    }
    prop.insert("format".into(), json!(format_of(ty)));
    if ty.is_array() {
        let element = ty
            .element
            .as_ref()
            .map(|e| e.name.as_str())
            .unwrap_or("text");
        prop.insert(
            "items".into(),
            json!({"type": scalar_type(element).unwrap_or("string")}),
        );
    }
    if !ty.enum_labels.is_empty() {
        prop.insert("enum".into(), json!(ty.enum_labels));
    }
    if let Some(n) = column.max_length {
        prop.insert("maxLength".into(), json!(n));
    }
    if let Some(default) = &column.default {
        prop.insert("default".into(), json!(default));
    }
    let mut notes = Vec::new();
    if relation.primary_key_columns().contains(&column.name) {
        notes.push("This is a Primary Key.<pk/>".to_owned());
    }
    for rel in &relation.relationships {
        if let Cardinality::ManyToOne { columns, .. }
        | Cardinality::OneToOne {
            columns,
            is_parent: false,
            ..
        } = &rel.cardinality
            && let [(own, theirs)] = columns.as_slice()
            && *own == column.name
            && let Some(target) = snapshot.relation_by_oid(rel.foreign_table)
        {
            notes.push(format!(
                "This is a Foreign Key to `{0}.{theirs}`.<fk table='{0}' column='{theirs}'/>",
                target.name
            ));
            break;
        }
    }
    let mut description = column.comment.clone().unwrap_or_default();
    if !notes.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str("Note:\n");
        description.push_str(&notes.join("\n"));
    }
    if !description.is_empty() {
        prop.insert("description".into(), json!(description));
    }
    Value::Object(prop)
}

/// The verbs of a function: POST always, GET for stable and immutable ones.
fn function_path(function: &Function) -> Value {
    let inputs: Vec<_> = function.inputs().filter(|a| !a.name.is_empty()).collect();
    let mut properties = Map::new();
    for arg in &inputs {
        let mut prop = json!({"format": format_of(&arg.data_type)});
        if let Some(t) = json_type(&arg.data_type) {
            prop["type"] = json!(t);
        }
        properties.insert(arg.name.clone(), prop);
    }
    let required: Vec<&str> = function
        .required_inputs()
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    let mut args = json!({"type": "object", "properties": properties, "required": required});
    if let Some(comment) = &function.comment {
        args["description"] = json!(comment);
    }
    let tags = json!(["(rpc) ".to_owned() + &function.name]);
    let mut verbs = Map::new();
    verbs.insert(
        "post".into(),
        json!({
            "tags": tags,
            "parameters": [
                {"name": "args", "required": true, "in": "body", "schema": args},
                param_ref("preferParams"),
            ],
            "responses": {"200": {"description": "OK"}},
        }),
    );
    if function.volatility != Volatility::Volatile {
        let params: Vec<Value> = inputs
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "required": !a.has_default,
                    "in": "query",
                    "type": json_type(&a.data_type).filter(|t| *t != "array").unwrap_or("string"),
                    "format": format_of(&a.data_type),
                })
            })
            .collect();
        verbs.insert(
            "get".into(),
            json!({
                "tags": tags,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }),
        );
    }
    Value::Object(verbs)
}

/// `{"$ref": "#/parameters/name"}`.
fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/parameters/{name}")})
}

/// The shared parameters (select, order, range, preferences).
fn common_parameters() -> Map<String, Value> {
    let query = |name: &str, description: &str| json!({"name": name, "description": description, "required": false, "in": "query", "type": "string"});
    let prefer = |values: &[&str]| {
        json!({"name": "Prefer", "description": "Preference", "required": false, "in": "header",
               "type": "string", "enum": values})
    };
    let mut params = Map::new();
    params.insert("select".into(), query("select", "Filtering Columns"));
    params.insert("on_conflict".into(), query("on_conflict", "On Conflict"));
    params.insert("order".into(), query("order", "Ordering"));
    params.insert("offset".into(), query("offset", "Limiting and Pagination"));
    params.insert("limit".into(), query("limit", "Limiting and Pagination"));
    params.insert(
        "range".into(),
        json!({"name": "Range", "description": "Limiting and Pagination", "required": false,
               "in": "header", "type": "string"}),
    );
    params.insert(
        "rangeUnit".into(),
        json!({"name": "Range-Unit", "description": "Limiting and Pagination", "required": false,
               "in": "header", "type": "string", "default": "items"}),
    );
    params.insert("preferParams".into(), prefer(&["params=single-object"]));
    params.insert(
        "preferReturn".into(),
        prefer(&[
            "return=representation",
            "return=minimal",
            "return=headers-only",
        ]),
    );
    params.insert(
        "preferCount".into(),
        prefer(&["count=exact", "count=planned", "count=estimated"]),
    );
    params.insert(
        "preferPost".into(),
        prefer(&[
            "return=representation",
            "return=minimal",
            "return=headers-only",
            "resolution=ignore-duplicates",
            "resolution=merge-duplicates",
        ]),
    );
    params
}

/// The type name without its modifier (`character varying(80)` → `character varying`).
fn bare(name: &str) -> &str {
    name.split('(').next().unwrap_or(name).trim()
}

/// The swagger format: PostgREST's (`int32`, `int64`), else the PostgreSQL type.
fn format_of(ty: &DataType) -> String {
    match bare(&ty.name) {
        "smallint" | "integer" => "int32".to_owned(),
        "bigint" => "int64".to_owned(),
        other => other.to_owned(),
    }
}

/// The JSON type of a column's values (none for json/jsonb: anything).
fn json_type(ty: &DataType) -> Option<&'static str> {
    if ty.is_array() {
        return Some("array");
    }
    let name = ty
        .base
        .as_ref()
        .map_or(ty.name.as_str(), |b| b.name.as_str());
    scalar_type(bare(name))
}

/// The JSON type of a scalar PostgreSQL type.
fn scalar_type(name: &str) -> Option<&'static str> {
    match bare(name) {
        "boolean" => Some("boolean"),
        "smallint" | "integer" | "bigint" => Some("integer"),
        "numeric" | "real" | "double precision" => Some("number"),
        "json" | "jsonb" => None,
        _ => Some("string"),
    }
}
