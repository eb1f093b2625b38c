"""Structured checks of the deploy kit, run by check.sh with the deploy-tools virtualenv
(helm-python-sdk: Helm's own Go engine; kubernetes-validate: the Kubernetes schemas; PyYAML).

    checks.py metrics     --pending FILE --rules FILE --dashboards DIR SCRAPE...
    checks.py dashboards  DIR
    checks.py compose     RESOLVED_YAML DEPLOY_DIR ENV_EXAMPLE OUT_ENV_DIR
    checks.py helm        CHART_DIR OUT_DIR
    checks.py dockerfile  ROOT OUT_ENV_FILE

Each prints what it checked and exits 1 with every problem found.
"""

import fnmatch
import json
import os
import re
import sys

import yaml

PROBLEMS = []


def problem(msg):
    PROBLEMS.append(msg)


def done(what):
    if PROBLEMS:
        for p in PROBLEMS:
            print(f"FAIL {what}: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"ok   {what}")


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (Kubernetes and Compose would keep one)."""


def _mapping(loader, node, deep=False):
    keys = set()
    # Keys written twice in the node itself; "<<" merges may be overridden, as YAML says.
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text, where):
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as err:
        problem(f"{where}: {err}")
        return None


# --- metrics ------------------------------------------------------------------------------

# Metric families the kit names: Fluxbase's own and the exporters'.
METRIC = re.compile(r"\b((?:fluxbase|node|pg|redis|minio|container)_[A-Za-z0-9_]+)")
SELECTOR = re.compile(r"\b((?:fluxbase|node|pg)_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# Labels Prometheus adds at scrape time, or the dashboards' variables.
SCRAPE_LABELS = {"instance", "job", "le"}


def scrape_series(paths):
    """Metric name -> set of label names, from Prometheus text files."""
    series = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s", line)
                if not m:
                    continue
                labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', m.group(3) or ""))
                series.setdefault(m.group(1), set()).update(labels)
    return series


def expressions(rules_path, dashboards_dir):
    """(where, PromQL) of every alert rule and dashboard target."""
    out = []
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            out.append((f"alert {rule.get('alert') or rule.get('record')}", rule["expr"]))
    for name in sorted(os.listdir(dashboards_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(dashboards_dir, name), encoding="utf-8") as f:
            dash = json.load(f)
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{dash['title']} / {panel['title']}", target["expr"]))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("definition"):
                out.append((f"{dash['title']} / ${var['name']}", var["definition"]))
    return out


def check_metrics(args):
    import argparse
    parser = argparse.ArgumentParser(prog="checks.py metrics")
    parser.add_argument("--pending", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--dashboards", required=True)
    parser.add_argument("scrapes", nargs="+")
    opts = parser.parse_args(args[1:])
    pending_path, rules, dashboards, scrapes = opts.pending, opts.rules, opts.dashboards, opts.scrapes
    series = scrape_series(scrapes)
    pending = {}
    with open(pending_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                problem(f"{pending_path}:{n}: want '<metric> <issue number>', got {line!r}")
                continue
            pending[parts[0]] = parts[1]
    named = {}
    for where, expr in expressions(rules, dashboards):
        bare = STRING.sub('""', expr)
        for name in METRIC.findall(bare):
            named.setdefault(name, where)
        for name, inner in SELECTOR.findall(expr):
            if name in pending or name not in series:
                continue
            for label in LABEL.findall(STRING.sub('""', inner)):
                if label not in SCRAPE_LABELS and label not in series[name]:
                    problem(f"{where}: {name} has no label {label!r} in the scrape "
                            f"(it has {sorted(series[name]) or 'none'})")
    for name, where in sorted(named.items()):
        if name in pending:
            if name in series:
                problem(f"{name} is exported now: remove it from {os.path.basename(pending_path)} "
                        f"(issue {pending[name]} landed)")
        elif name not in series:
            problem(f"{where}: {name} is not in the scrape (a typo, or a metric that is not "
                    "exported: fix the name, or list it with its issue in pending-metrics.txt)")
    for name, issue in sorted(pending.items()):
        if name not in named:
            problem(f"pending metric {name} (issue {issue}) is named by no rule or dashboard: remove it")
    exported = sorted(n for n in named if n not in pending)
    print(f"     {len(exported)} metrics named by rules and dashboards found in the scrapes; "
          f"{len(pending)} pending: " + ", ".join(f"{k} (#{v})" for k, v in sorted(pending.items())))
    done("metrics named in alerts.yml and the dashboards")


# --- dashboards ---------------------------------------------------------------------------

TITLES = {"Fluxbase - Application Overview", "Fluxbase - Database Metrics"}


def check_dashboards(args):
    directory = args[1]
    titles, uids = set(), set()
    provisioned = os.path.join(directory, "..", "provisioning", "datasources", "prometheus.yml")
    with open(provisioned, encoding="utf-8") as f:
        ds_uid = yaml.safe_load(f)["datasources"][0]["uid"]
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                dash = json.load(f)
        except ValueError as err:
            problem(f"{name}: not valid JSON: {err}")
            continue
        titles.add(dash.get("title"))
        if dash.get("uid") in uids:
            problem(f"{name}: uid {dash.get('uid')} used twice")
        uids.add(dash.get("uid"))
        ids = [p["id"] for p in dash["panels"]]
        if len(ids) != len(set(ids)):
            problem(f"{name}: panel ids repeat")
        for panel in dash["panels"]:
            if panel["type"] == "row":
                continue
            if panel.get("datasource", {}).get("uid") != ds_uid:
                problem(f"{name} / {panel['title']}: datasource is not the provisioned uid {ds_uid!r}")
            if not panel.get("targets"):
                problem(f"{name} / {panel['title']}: no query")
    if titles != TITLES:
        problem(f"dashboard titles are {sorted(map(str, titles))}, the runbook names {sorted(TITLES)}")
    done("dashboards: valid JSON, the runbook's titles, the provisioned data source")


# --- compose ------------------------------------------------------------------------------

# Host paths the exporters read (node-exporter, cAdvisor): the host's, not the kit's files.
HOST_PATHS = {"/", "/var/run", "/sys", "/var/lib/docker", "/var/lib/docker/", "/dev/disk", "/dev/disk/"}
INSTANCES = ["fluxbase-1", "fluxbase-2", "fluxbase-3"]


def env_example(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
            if m:
                out[m.group(1)] = m.group(2)
    return out


def check_compose(args):
    resolved_path, deploy_dir, env_path, out_dir = args[1:5]
    with open(resolved_path, encoding="utf-8") as f:
        config = load_yaml(f.read(), "docker-compose config output")
    with open(os.path.join(deploy_dir, "docker-compose.production.yml"), encoding="utf-8") as f:
        source = f.read()
    load_yaml(source, "docker-compose.production.yml")
    services = config["services"]
    # Variables: every one the file reads is in .env.example, every one there is read.
    example = env_example(env_path)
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", source))
    for var in sorted(used - set(example)):
        problem(f"${{{var}}} is used by the compose file but not in .env.example")
    scripts = ""
    for name in ("backup.sh", "restore.sh", "s3.sh", "settings.sh"):
        with open(os.path.join(deploy_dir, "scripts", name), encoding="utf-8") as f:
            scripts += f.read()
    for var in sorted(set(example) - used):
        if var not in scripts:
            problem(f"{var} is in .env.example but read by neither the compose file nor the scripts")
    for name, svc in services.items():
        if not svc.get("image"):
            problem(f"service {name} has no image")
        for vol in svc.get("volumes", []):
            # docker-compose 1.x prints "source:target[:mode]"; 2.x prints mappings.
            src = vol.get("source") if isinstance(vol, dict) else vol.split(":", 1)[0]
            if not src or not src.startswith("/"):
                continue  # a named volume
            if src in HOST_PATHS:
                continue
            if not os.path.exists(src):
                problem(f"service {name} mounts {src}, which does not exist")
        if "build" in svc:
            ctx = svc["build"]["context"]
            dockerfile = os.path.join(ctx, svc["build"].get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                problem(f"service {name} builds from {dockerfile}, which does not exist")
    for name in INSTANCES:
        svc = services.get(name)
        if not svc:
            problem(f"service {name} is missing (3 instances)")
            continue
        deps = svc.get("depends_on", {})
        if deps.get("postgres", {}).get("condition") != "service_healthy":
            problem(f"{name} does not wait for a healthy postgres")
        if deps.get("fluxbase-migrate", {}).get("condition") != "service_completed_successfully":
            problem(f"{name} does not wait for the migrations")
        with open(os.path.join(out_dir, f"{name}.env"), "w", encoding="utf-8") as f:
            for key, value in sorted(svc.get("environment", {}).items()):
                f.write(f"{key}={value}\n")
    if services.get("fluxbase-migrate", {}).get("command") != ["migrate"]:
        problem("fluxbase-migrate does not run `fluxbase migrate`")
    pg = " ".join(services["postgres"].get("command", []))
    for setting in ("wal_level=logical", "max_replication_slots=", "max_wal_senders=", "max_slot_wal_keep_size="):
        if setting not in pg:
            problem(f"postgres is not started with {setting}")
    if "healthcheck" not in services["postgres"]:
        problem("postgres has no health check")
    # Scale-out: every instance runs realtime over the Redis bus (one slot leader elected).
    for n in INSTANCES:
        env = services.get(n, {}).get("environment", {})
        if env.get("FLUXBASE_REALTIME_ENABLED") != "true" or env.get("FLUXBASE_REALTIME_BUS") != "redis":
            problem(f"{n} must run realtime over the redis bus (FLUXBASE_REALTIME_ENABLED, FLUXBASE_REALTIME_BUS)")
        if not str(env.get("FLUXBASE_REDIS_URL", "")).startswith("redis://"):
            problem(f"{n} has no FLUXBASE_REDIS_URL")
    if "appendonly" not in " ".join(services.get("redis", {}).get("command", [])):
        problem("redis must run append-only (the bus's entries survive a restart)")
    for name in ("redis", "minio", "minio-init", "prometheus", "grafana", "nginx"):
        if name not in services:
            problem(f"service {name} is missing")
    done(f"compose: {len(services)} services, every mounted file, every variable of .env.example")


# --- helm ---------------------------------------------------------------------------------

# The runbook's `helm install ... --set` line.
RUNBOOK_SET = ["database.host=postgres.example.com", "auth.jwtSecret=<secret>",
               "ingress.enabled=true", "ingress.host=api.example.com"]


def parse_set(items):
    """Helm's --set a.b=c, with true/false/integers typed as Helm types them."""
    values = {}
    for item in items:
        key, value = item.split("=", 1)
        if value in ("true", "false"):
            value = value == "true"
        elif re.fullmatch(r"-?\d+", value):
            value = int(value)
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return values


def check_helm(args):
    import kubernetes_validate
    from helm_python import Chart, lint

    chart_dir, out_dir = args[1], args[2]
    chart = Chart.load(chart_dir)
    report = lint(chart_dir, strict=True)
    for msg in report.get("messages", []):
        if msg["severity"] >= 2:
            problem(f"helm lint: {msg['path']}: {msg['error']}")
    # <secret> of the runbook is a placeholder: render it with a value the server accepts.
    sets = [s.replace("<secret>", "r" * 48) for s in RUNBOOK_SET]
    cases = {"default": None, "runbook": parse_set(sets)}
    k8s_version = kubernetes_validate.utils.latest_version()
    for case, values in cases.items():
        rendered = chart.render(values, name="fluxbase", namespace="default", is_install=True)
        kinds = {}
        for template, text in sorted(rendered.items()):
            if template.endswith("NOTES.txt"):
                continue
            for doc in yaml.load_all(text, Loader=StrictLoader) if text.strip() else []:
                if not doc:
                    continue
                where = f"{case}: {template}: {doc.get('kind')}"
                try:
                    kubernetes_validate.validate(doc, k8s_version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    problem(f"{where}: {err.message} at {'.'.join(map(str, err.path))}")
                kinds.setdefault(doc["kind"], []).append(doc)
        want = {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"}
        if case == "runbook":
            want.add("Ingress")
        for kind in sorted(want - set(kinds)):
            problem(f"{case}: no {kind} rendered")
        for dep in kinds.get("Deployment", []):
            pod = dep["spec"]["template"]["spec"]
            container = pod["containers"][0]
            if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
                problem(f"{case}: {dep['metadata']['name']}: liveness probe is not GET /health")
            if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
                problem(f"{case}: {dep['metadata']['name']}: readiness probe is not GET /ready")
            if not container.get("resources", {}).get("requests"):
                problem(f"{case}: {dep['metadata']['name']}: no resource requests")
            if pod.get("securityContext", {}).get("runAsUser") != 1000:
                problem(f"{case}: {dep['metadata']['name']}: not run as uid 1000")
        realtime = [d["metadata"]["name"] for d in kinds.get("Deployment", [])
                    if any(e.get("name") == "FLUXBASE_REALTIME_ENABLED" and e.get("value") == "true"
                           for e in d["spec"]["template"]["spec"]["containers"][0]["env"])]
        replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in kinds.get("Deployment", [])}
        if len(realtime) != 1 or replicas[realtime[0]] != 1:
            problem(f"{case}: want one realtime pod until issue 17, got {realtime} ({replicas})")
        if case == "runbook":
            ingress = kinds["Ingress"][0]
            if ingress["spec"]["rules"][0]["host"] != "api.example.com":
                problem("runbook: the ingress host is not ingress.host")
            annotations = ingress["metadata"].get("annotations", {})
            if annotations.get("nginx.ingress.kubernetes.io/proxy-read-timeout") != "3600":
                problem("runbook: the ingress has no WebSocket read timeout (3600 s)")
            paths = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
            if paths.get("/realtime") != f"{realtime[0]}":
                problem(f"runbook: /realtime does not go to the realtime pod's service ({paths})")
            secret = kinds["Secret"][0]["data"]
            import base64
            url = base64.b64decode(secret["DATABASE_URL"]).decode()
            if "@postgres.example.com:" not in url:
                problem(f"runbook: DATABASE_URL does not use database.host ({url.split('@')[-1]})")
            if base64.b64decode(secret["FLUXBASE_JWT_SECRET"]).decode() != "r" * 48:
                problem("runbook: FLUXBASE_JWT_SECRET is not auth.jwtSecret")
        # What the pods would read, for `fluxbase --config-test` by check.sh.
        config = kinds["ConfigMap"][0]["data"]["fluxbase.yaml"]
        with open(os.path.join(out_dir, f"{case}.fluxbase.yaml"), "w", encoding="utf-8") as f:
            f.write(config)
        print(f"     {case}: " + ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items()))
              + f" valid against Kubernetes {k8s_version} (strict)")
    done("helm chart rendered by Helm's engine (helm-python-sdk) for the default values and the runbook's --set line")


# --- dockerfile ---------------------------------------------------------------------------


def dockerignore_excludes(root, rel):
    patterns = []
    with open(os.path.join(root, ".dockerignore"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = rel.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[: i + 1]), pat) or
                  fnmatch.fnmatch("/".join(parts[: i + 1]), pat.replace("**/", ""))
                  for i in range(len(parts)))
        if hit:
            excluded = not negate
    return excluded


def required_rust(root):
    """The newest rust-version among the workspace and every crate the release build of
    fluxbase-api compiles (normal and build dependencies, this platform): (version, who)."""
    import subprocess

    host = re.search(r"host: (\S+)", subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True).stdout).group(1)
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
        cwd=root, capture_output=True, text=True, check=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    start = next(i for i, p in packages.items() if p["name"] == "fluxbase-api")
    seen, stack = set(), [start]
    while stack:
        pkg = stack.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        stack += [d["pkg"] for d in nodes[pkg]["deps"]
                  if any(k["kind"] in (None, "build") for k in d["dep_kinds"])]
    with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
        workspace = re.search(r'rust-version\s*=\s*"([\d.]+)"', f.read()).group(1)
    best = (tuple(map(int, workspace.split("."))), "the workspace")
    for pkg in seen:
        rv = packages[pkg].get("rust_version")
        if rv and tuple(map(int, rv.split("."))) > best[0]:
            best = (tuple(map(int, rv.split("."))), f"{packages[pkg]['name']} {packages[pkg]['version']}")
    return best


def check_dockerfile(args):
    root, out_env = args[1], args[2]
    with open(os.path.join(root, "Dockerfile"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    stages, args_default = [], {}
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args_default[k.strip()] = v.strip()
        if word == "FROM":
            stages.append({"from": rest, "lines": []})
        elif stages:
            stages[-1]["lines"].append((word, rest))
    if len(stages) < 2:
        problem("not a multi-stage build")
        done("Dockerfile")
    builder, final = stages[0], stages[-1]
    m = re.search(r"rust:\$\{RUST_VERSION\}|rust:([\d.]+)", builder["from"])
    version = args_default.get("RUST_VERSION") if m and m.group(0).startswith("rust:$") else (m.group(1) if m else None)
    need, who = required_rust(root)
    if not version or tuple(map(int, version.split("."))) < need:
        problem(f"builder Rust {version} is older than {'.'.join(map(str, need))}, the rust-version of {who}")
    if not any(w == "RUN" and "cargo build --release --locked -p fluxbase-api" in r for w, r in builder["lines"]):
        problem("the builder does not run cargo build --release --locked -p fluxbase-api")
    final_cmds = {w for w, _ in final["lines"]}
    user = [r for w, r in final["lines"] if w == "USER"]
    if not user or user[-1].split(":")[0] != "1000":
        problem(f"the runtime stage does not run as uid 1000 (USER {user})")
    if "8080" not in " ".join(r for w, r in final["lines"] if w == "EXPOSE"):
        problem("the runtime stage does not EXPOSE 8080")
    health = " ".join(r for w, r in final["lines"] if w == "HEALTHCHECK")
    if "/health" not in health:
        problem("no HEALTHCHECK on /health")
    runs = " ".join(r for w, r in final["lines"] if w == "RUN")
    if "postgresql-client" not in runs:
        problem("the runtime stage lacks the PostgreSQL client tools (backup.sh)")
    for word, rest in final["lines"] + builder["lines"]:
        if word != "COPY" or "--from=" in rest:
            continue
        srcs = [s for s in rest.split() if not s.startswith("--")][:-1]
        for src in srcs:
            if src == ".":
                continue
            if not os.path.exists(os.path.join(root, src)):
                problem(f"COPY {src}: no such file")
            elif dockerignore_excludes(root, src):
                problem(f"COPY {src}: excluded by .dockerignore")
    packages = re.findall(r"apt-get install[^&]*", runs)
    with open(out_env, "w", encoding="utf-8") as f:
        for word, rest in final["lines"]:
            if word == "ENV":
                for k, v in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", rest):
                    f.write(f"{k}={v}\n")
        f.write("# apt packages: " + " ".join(
            p for chunk in packages for p in chunk.split()[2:] if not p.startswith("-")) + "\n")
    if "ENTRYPOINT" not in final_cmds:
        problem("no ENTRYPOINT")
    done("Dockerfile: multi-stage, Rust >= every rust-version of the build, uid 1000, EXPOSE 8080, HEALTHCHECK /health, COPY sources")


if __name__ == "__main__":
    commands = {"metrics": check_metrics, "dashboards": check_dashboards, "compose": check_compose,
                "helm": check_helm, "dockerfile": check_dockerfile}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[1:])
