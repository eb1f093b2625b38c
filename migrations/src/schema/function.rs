//! Functions callable over RPC (procedures, aggregates, window and trigger functions are
//! not): arguments with their modes and defaults, and the shape of what they return, so
//! REST can pick an overload from the argument names a request gives, choose GET or POST
//! by volatility, and filter a set-returning result like a table.

use super::types::DataType;

/// How an argument passes (`pg_proc.proargmodes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgMode {
    /// `IN` (the default).
    In,
    /// `OUT`: a result column, not an argument.
    Out,
    /// `INOUT`: both.
    InOut,
    /// `VARIADIC`: the last input, an array.
    Variadic,
    /// A column of `RETURNS TABLE (...)`.
    Table,
}

impl ArgMode {
    pub(super) fn from_proargmode(mode: &str) -> ArgMode {
        match mode {
            "o" => ArgMode::Out,
            "b" => ArgMode::InOut,
            "v" => ArgMode::Variadic,
            "t" => ArgMode::Table,
            _ => ArgMode::In,
        }
    }

    /// Whether a caller passes it.
    pub fn is_input(self) -> bool {
        matches!(self, ArgMode::In | ArgMode::InOut | ArgMode::Variadic)
    }

    /// Whether it is a column of the result.
    pub fn is_output(self) -> bool {
        matches!(self, ArgMode::Out | ArgMode::InOut | ArgMode::Table)
    }
}

/// One argument (or result column) in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArg {
    /// Its name; empty for an unnamed argument.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// How it passes.
    pub mode: ArgMode,
    /// An input a caller may leave out.
    pub has_default: bool,
}

/// `pg_proc.provolatile`: decides whether RPC may run it on GET (stable, immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    /// `IMMUTABLE`.
    Immutable,
    /// `STABLE`.
    Stable,
    /// `VOLATILE`.
    Volatile,
}

impl Volatility {
    pub(super) fn from_provolatile(value: &str) -> Volatility {
        match value {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            _ => Volatility::Volatile,
        }
    }
}

/// What a function returns; whether it returns a set is [`Function::returns_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnType {
    /// `RETURNS void`.
    Void,
    /// A scalar (base, domain, enum, array, range or a pseudo-type such as `record`
    /// without OUT columns).
    Scalar(DataType),
    /// A composite type; `relation` is the table or view whose row type it is, when it is
    /// one the cache holds (a standalone composite type has none).
    Composite {
        data_type: DataType,
        relation: Option<u32>,
    },
    /// `RETURNS TABLE (...)`, or a record made of OUT/INOUT parameters: the columns.
    Table(Vec<FunctionArg>),
}

/// One function; overloads are separate values sharing schema and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// `pg_proc.oid`.
    pub oid: u32,
    /// Schema name (exact).
    pub schema: String,
    /// Function name (exact).
    pub name: String,
    /// Every argument in declaration order, result columns (OUT, TABLE) included.
    pub args: Vec<FunctionArg>,
    /// How many trailing inputs have defaults (`pronargdefaults`).
    pub defaults: usize,
    /// The declared return type (`record` for OUT/TABLE results).
    pub return_type: DataType,
    /// The shape of the result.
    pub returns: ReturnType,
    /// `RETURNS SETOF ...` or `RETURNS TABLE`.
    pub returns_set: bool,
    /// Volatility.
    pub volatility: Volatility,
    /// `SECURITY DEFINER`: runs with its owner's rights.
    pub security_definer: bool,
    /// `COMMENT ON FUNCTION`.
    pub comment: Option<String>,
}

impl Function {
    /// The arguments a caller passes, in order.
    pub fn inputs(&self) -> impl Iterator<Item = &FunctionArg> {
        self.args.iter().filter(|a| a.mode.is_input())
    }

    /// The inputs a caller must pass.
    pub fn required_inputs(&self) -> impl Iterator<Item = &FunctionArg> {
        self.inputs().filter(|a| !a.has_default)
    }

    /// The input named exactly `name`.
    pub fn input(&self, name: &str) -> Option<&FunctionArg> {
        self.inputs().find(|a| a.name == name)
    }
}
