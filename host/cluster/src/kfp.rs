//! Kubeflow Pipelines v2: a sluice pipeline as a `PipelineSpec` (the IR
//! that KFP, Argo through KFP, and Vertex AI Pipelines run), one container
//! task per step.
//!
//! The engine schedules pods; sluice keeps the cache, the lineage, the
//! registry and the sandbox. So every task runs the same image and calls
//! `sluice` against the team store:
//!
//! - `sluice-plan` runs `sluice run --plan-only --package DIGEST --run-id
//!   {{$.pipeline_job_uuid}}`: the run is named by the engine's job, so a
//!   retried plan task finds its run planned already;
//! - one task per step runs `sluice step exec RUN STEP`, after the tasks
//!   of the steps it consumes from (`dependentTasks`), with the pod's
//!   resources from the step's `limits` and `accelerator`, the engine's
//!   retries from its `retries`, and KFP's own cache off (sluice's
//!   content-addressed cache decides, per step, from the inputs' digests);
//! - `sluice-report` runs `sluice runs finish RUN` once every step's task
//!   is done, failed or not (`ALL_UPSTREAM_TASKS_COMPLETED`).
//!
//! Credentials are never written into the definition: `--env` refuses
//! names that look like secrets, and `--secret-env` maps a Kubernetes
//! secret's key to a variable by reference (the `kfp-kubernetes`
//! platform spec, a second YAML document).

use crate::yaml::to_yaml;
use serde_json::{Map, Value, json};
use sluice_pipeline::spec::Source;
use sluice_pipeline::validate::Plan;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The IR schema version written (KFP 2.x).
pub const SCHEMA_VERSION: &str = "2.1.0";
/// The task that plans the run.
pub const PLAN_TASK: &str = "sluice-plan";
/// The task that ends the run.
pub const REPORT_TASK: &str = "sluice-report";
/// What a step's pod needs beyond the step's own memory limit: the sluice
/// process (runtime, compiled code, encode buffers).
pub const POD_OVERHEAD: u64 = 512 << 20;
/// The placeholder KFP replaces with the job's id.
const JOB_ID: &str = "{{$.pipeline_job_uuid}}";
/// The placeholder of a task's `run_id` parameter.
const RUN_ID: &str = "{{$.inputs.parameters['run_id']}}";

/// What the export needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct KfpOptions {
    /// The container image holding `sluice` (on its PATH).
    pub image: String,
    /// The digest of the published pipeline (`sluice run --package`).
    pub package: String,
    /// The store's objects, as pods reach them (`s3://bucket/prefix`).
    pub objects: String,
    /// The store's metadata server, as pods reach it, without a password.
    pub metadata: String,
    /// Plain environment variables for every task.
    pub env: Vec<(String, String)>,
    /// Variables taken from Kubernetes secrets, by reference.
    pub secret_env: Vec<SecretEnv>,
    /// Retries the engine makes of a task beyond the step's `retries`:
    /// for pods lost to their node, and a store that could not be reached.
    pub pod_retries: u32,
    /// The memory limit of steps that set none (`--memory`, else the
    /// spec's `[pipeline] limits`, else the host's default).
    pub default_memory: u64,
    /// The version of sluice writing it.
    pub sluice_version: String,
}

/// An environment variable set from a key of a Kubernetes secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    /// The variable.
    pub env: String,
    /// The secret's name.
    pub secret: String,
    /// The key in the secret.
    pub key: String,
}

/// Why a pipeline cannot be exported as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    /// An `--env` that looks like a credential.
    #[error(
        "`{0}` looks like a credential, and --env values are written into the pipeline definition for anyone who can read it; pass it by reference: --secret-env {0}=SECRET:KEY"
    )]
    CredentialInEnv(String),
    /// Two steps whose names become the same task name.
    #[error(
        "steps `{0}` and `{1}` would both be task `{2}` (KFP task names use `-` for `_`); rename one"
    )]
    TaskNameClash(String, String, String),
    /// The IR written fails sluice's own checks (a bug in sluice).
    #[error("the exported pipeline is inconsistent (a bug in sluice, please report it): {}", .0.join("; "))]
    Inconsistent(Vec<String>),
}

/// A pipeline as KFP IR: the `PipelineSpec` and, when secrets are used,
/// the Kubernetes `PlatformSpec`.
#[derive(Debug, Clone)]
pub struct KfpPipeline {
    /// The `PipelineSpec`.
    pub spec: Value,
    /// The `PlatformSpec` (`platforms.kubernetes`), if any.
    pub platform: Option<Value>,
}

impl KfpPipeline {
    /// The YAML KFP's client and UI take: the `PipelineSpec`, then the
    /// `PlatformSpec` as a second document when there is one.
    pub fn to_yaml(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&to_yaml(&self.spec));
        if let Some(platform) = &self.platform {
            out.push_str("---\n");
            out.push_str(&to_yaml(platform));
        }
        out
    }
}

/// Whether an environment variable's name says it holds a credential.
pub fn looks_like_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE"]
        .iter()
        .any(|w| upper.contains(w))
        || matches!(upper.as_str(), "AWS_ACCESS_KEY_ID" | "PGPASSFILE")
}

/// Refuses plain environment variables that look like credentials: they
/// would be written into the definition.
pub fn check_env(env: &[(String, String)]) -> Result<(), ExportError> {
    match env.iter().find(|(n, _)| looks_like_credential(n)) {
        Some((name, _)) => Err(ExportError::CredentialInEnv(name.clone())),
        None => Ok(()),
    }
}

/// `name` as a KFP task or pipeline name: lower case, `-` for anything
/// else than letters and digits.
pub fn kfp_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// A Kubernetes quantity of `bytes`: binary units when exact.
pub fn quantity(bytes: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A CPU quantity of `millis` thousandths of a core.
fn cpu_quantity(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Exports `plan` (its spec's `[pipeline]` limits give the defaults).
pub fn export(
    plan: &Plan,
    defaults: &sluice_pipeline::spec::Limits,
    options: &KfpOptions,
) -> Result<KfpPipeline, ExportError> {
    check_env(&options.env)?;
    // Task names: the step's, made KFP-safe, unique.
    let mut task_of: BTreeMap<&str, String> = BTreeMap::new();
    let mut taken: HashMap<String, &str> = HashMap::new();
    taken.insert(PLAN_TASK.into(), PLAN_TASK);
    taken.insert(REPORT_TASK.into(), REPORT_TASK);
    for s in &plan.steps {
        let task = kfp_name(s.name());
        if let Some(other) = taken.insert(task.clone(), s.name()) {
            return Err(ExportError::TaskNameClash(
                other.to_string(),
                s.name().to_string(),
                task,
            ));
        }
        task_of.insert(s.name(), task);
    }

    let mut env = vec![
        json!({"name": "SLUICE_STORE", "value": options.objects}),
        json!({"name": "SLUICE_METADATA_URL", "value": options.metadata}),
    ];
    for (name, value) in &options.env {
        env.push(json!({"name": name, "value": value}));
    }

    let mut components = Map::new();
    let mut executors = Map::new();
    let mut tasks = Map::new();
    let mut add = |task: &str, args: Vec<String>, resources: Option<Value>, mut spec: Value| {
        let component = format!("comp-{task}");
        let executor = format!("exec-{task}");
        components.insert(
            component.clone(),
            json!({
                "executorLabel": executor,
                "inputDefinitions": {"parameters": {"run_id": {"parameterType": "STRING"}}},
            }),
        );
        let mut container = json!({
            "image": options.image,
            "command": ["sluice"],
            "args": args,
            "env": env,
        });
        if let Some(r) = resources {
            container["resources"] = r;
        }
        executors.insert(executor, json!({"container": container}));
        spec["componentRef"] = json!({"name": component});
        spec["taskInfo"] = json!({"name": task});
        spec["cachingOptions"] = json!({"enableCache": false});
        spec["inputs"] = json!({"parameters": {"run_id": {"runtimeValue": {"constant": JOB_ID}}}});
        tasks.insert(task.to_string(), spec);
    };

    add(
        PLAN_TASK,
        strings(&[
            "run",
            "--plan-only",
            "--package",
            &options.package,
            "--run-id",
            RUN_ID,
        ]),
        None,
        json!({"retryPolicy": retry_policy(options.pod_retries)}),
    );
    for s in &plan.steps {
        let task = &task_of[s.name()];
        let upstream: BTreeSet<&str> = s
            .inputs
            .iter()
            .filter_map(|i| match &i.source {
                Source::Step { step, .. } => Some(task_of[step.as_str()].as_str()),
                Source::Data(_) => None,
            })
            .collect();
        let dependent: Vec<&str> = if upstream.is_empty() {
            vec![PLAN_TASK]
        } else {
            upstream.into_iter().collect()
        };
        let limits = &s.step.limits;
        let memory = limits
            .memory
            .or(defaults.memory)
            .unwrap_or(options.default_memory);
        let mut resources = json!({
            "resourceMemoryRequest": quantity(memory + POD_OVERHEAD),
            "resourceMemoryLimit": quantity(memory + POD_OVERHEAD),
        });
        if let Some(cpu) = limits.cpu.or(defaults.cpu) {
            resources["resourceCpuRequest"] = cpu_quantity(cpu).into();
            resources["resourceCpuLimit"] = cpu_quantity(cpu).into();
        }
        if let Some(a) = &s.step.accelerator {
            resources["accelerator"] =
                json!({"resourceType": a.kind, "resourceCount": a.count.to_string()});
        }
        add(
            task,
            strings(&["step", "exec", RUN_ID, s.name()]),
            Some(resources),
            json!({
                "dependentTasks": dependent,
                "retryPolicy": retry_policy(s.step.retries.saturating_add(options.pod_retries)),
            }),
        );
    }
    let mut all: Vec<&str> = task_of.values().map(String::as_str).collect();
    all.sort();
    add(
        REPORT_TASK,
        strings(&["runs", "finish", RUN_ID]),
        None,
        json!({
            "dependentTasks": all,
            "triggerPolicy": {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"},
            "retryPolicy": retry_policy(options.pod_retries),
        }),
    );

    let mut info = json!({"name": kfp_name(&plan.name)});
    if let Some(d) = &plan.description {
        info["description"] = d.clone().into();
    }
    let spec = json!({
        "pipelineInfo": info,
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": format!("sluice-{}", options.sluice_version),
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {"dag": {"tasks": tasks}},
    });
    let platform = (!options.secret_env.is_empty()).then(|| platform(&spec, &options.secret_env));
    let problems = check(&spec);
    if !problems.is_empty() {
        return Err(ExportError::Inconsistent(problems));
    }
    Ok(KfpPipeline { spec, platform })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Retries with a backoff from 10 s, doubling, at most 5 minutes apart:
/// time for upstream outputs to be recorded and a store to come back.
fn retry_policy(retries: u32) -> Value {
    json!({
        "maxRetryCount": retries,
        "backoffDuration": "10s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "300s",
    })
}

/// The Kubernetes platform spec: every executor gets the secrets' keys as
/// environment variables, by reference.
fn platform(spec: &Value, secret_env: &[SecretEnv]) -> Value {
    let mut by_secret: BTreeMap<&str, Vec<&SecretEnv>> = BTreeMap::new();
    for s in secret_env {
        by_secret.entry(&s.secret).or_default().push(s);
    }
    let secrets: Vec<Value> = by_secret
        .iter()
        .map(|(secret, keys)| {
            json!({
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
                "keyToEnv": keys.iter().map(|k| json!({"secretKey": k.key, "envVar": k.env})).collect::<Vec<_>>(),
                "optional": false,
            })
        })
        .collect();
    let executors: Map<String, Value> = spec["deploymentSpec"]["executors"]
        .as_object()
        .expect("executors")
        .keys()
        .map(|e| (e.clone(), json!({"secretAsEnv": secrets})))
        .collect();
    json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}})
}

/// The checks a `PipelineSpec`'s schema does not make: every task's
/// component and every component's executor exists, every dependency is a
/// task, the tasks have no cycle, and every placeholder in a command
/// resolves (an input parameter the component declares and the task
/// binds, or one of the engine's own). Returns the problems found.
pub fn check(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Map::new();
    let components = spec["components"].as_object().unwrap_or(&empty);
    let executors = spec["deploymentSpec"]["executors"]
        .as_object()
        .unwrap_or(&empty);
    let tasks = spec["root"]["dag"]["tasks"].as_object().unwrap_or(&empty);
    if tasks.is_empty() {
        problems.push("the root DAG has no tasks".into());
    }
    for (name, task) in tasks {
        let Some(component_name) = task["componentRef"]["name"].as_str() else {
            problems.push(format!("task `{name}` names no component"));
            continue;
        };
        let Some(component) = components.get(component_name) else {
            problems.push(format!(
                "task `{name}` runs component `{component_name}`, which is not defined"
            ));
            continue;
        };
        for d in task["dependentTasks"].as_array().into_iter().flatten() {
            let d = d.as_str().unwrap_or_default();
            if !tasks.contains_key(d) {
                problems.push(format!(
                    "task `{name}` depends on `{d}`, which is not a task"
                ));
            }
        }
        let Some(label) = component["executorLabel"].as_str() else {
            problems.push(format!("component `{component_name}` has no executor"));
            continue;
        };
        let Some(executor) = executors.get(label) else {
            problems.push(format!(
                "component `{component_name}` runs executor `{label}`, which is not defined"
            ));
            continue;
        };
        let declared = component["inputDefinitions"]["parameters"]
            .as_object()
            .unwrap_or(&empty);
        let bound = task["inputs"]["parameters"].as_object().unwrap_or(&empty);
        for p in declared.keys() {
            if !bound.contains_key(p) {
                problems.push(format!("task `{name}` does not bind input parameter `{p}`"));
            }
        }
        let container = &executor["container"];
        let words = container["command"]
            .as_array()
            .into_iter()
            .chain(container["args"].as_array())
            .flatten()
            .filter_map(Value::as_str);
        for word in words {
            for placeholder in placeholders(word) {
                let ok = match placeholder
                    .strip_prefix("$.inputs.parameters['")
                    .and_then(|p| p.strip_suffix("']"))
                {
                    Some(p) => declared.contains_key(p),
                    None => ENGINE_PLACEHOLDERS.contains(&placeholder),
                };
                if !ok {
                    problems.push(format!(
                        "executor `{label}` uses placeholder {{{{{placeholder}}}}}, which nothing provides"
                    ));
                }
            }
        }
    }
    if let Some(cycle) = cycle(tasks) {
        problems.push(format!(
            "the tasks depend on each other in a cycle: {}",
            cycle.join(" → ")
        ));
    }
    problems
}

/// The placeholders KFP's launcher fills in by itself.
const ENGINE_PLACEHOLDERS: &[&str] = &[
    "$.pipeline_job_name",
    "$.pipeline_job_uuid",
    "$.pipeline_task_name",
    "$.pipeline_task_uuid",
    "$.pipeline_root",
];

/// The `{{…}}` placeholders in `word`, without their braces.
fn placeholders(word: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = word;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                found.push(&after[..end]);
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    found
}

/// A cycle among the tasks' dependencies, if there is one.
fn cycle(tasks: &Map<String, Value>) -> Option<Vec<String>> {
    fn visit<'t>(
        name: &'t str,
        tasks: &'t Map<String, Value>,
        state: &mut HashMap<&'t str, bool>,
        path: &mut Vec<&'t str>,
    ) -> Option<Vec<String>> {
        match state.get(name) {
            Some(true) => return None,
            Some(false) => {
                let from = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut c: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                c.push(name.to_string());
                return Some(c);
            }
            None => {}
        }
        state.insert(name, false);
        path.push(name);
        for d in tasks.get(name)?["dependentTasks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(d) = d.as_str().filter(|d| tasks.contains_key(*d))
                && let Some(c) = visit(d, tasks, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state.insert(name, true);
        None
    }
    let mut state = HashMap::new();
    for name in tasks.keys() {
        if let Some(c) = visit(name, tasks, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_pipeline::spec::Spec;
    use sluice_pipeline::validate::validate_with;
    use sluice_runtime::{ArtifactKind, Manifest, Port};
    use std::path::Path;

    /// A plan of `spec` where every `std:` step takes optional files `a`
    /// and `b` and gives a file `out`.
    fn plan(spec: &str) -> (Plan, sluice_pipeline::spec::Limits) {
        let spec = Spec::parse(Path::new("p.toml"), spec).unwrap();
        let optional = |name: &str| Port {
            optional: true,
            ..Port::new(name, ArtifactKind::File)
        };
        let resolver = |_: &sluice_pipeline::spec::ComponentRef| {
            Ok(Manifest::new("s", "1.0.0")
                .input(optional("a"))
                .input(optional("b"))
                .output(Port::new("out", ArtifactKind::File)))
        };
        (validate_with(&spec, &resolver, false).unwrap(), spec.limits)
    }

    fn options() -> KfpOptions {
        KfpOptions {
            image: "img:1".into(),
            package: "ab".repeat(32),
            objects: "s3://b/p".into(),
            metadata: "postgres://ann@db/s".into(),
            env: vec![("AWS_REGION".into(), "eu-west-1".into())],
            secret_env: vec![],
            pod_retries: 2,
            default_memory: 1 << 30,
            sluice_version: "0.1.0".into(),
        }
    }

    const DIAMOND: &str = r#"
[pipeline]
name = "my_pipe"
limits = { cpu = "500m" }
[steps.first_one]
component = "std:x"
[steps.left]
component = "std:x"
inputs = { a = "first_one.out" }
limits = { memory = "3GiB", cpu = 4 }
accelerator = { type = "nvidia.com/gpu", count = 2 }
retries = 3
[steps.right]
component = "std:x"
inputs = { a = "first_one.out" }
[steps.last]
component = "std:x"
inputs = { a = "left.out", b = "right.out" }
"#;

    #[test]
    fn each_step_is_a_task_after_the_steps_it_consumes_from_with_its_resources() {
        let (plan, limits) = plan(DIAMOND);
        let exported = export(&plan, &limits, &options()).unwrap();
        let spec = &exported.spec;
        assert!(check(spec).is_empty());
        assert_eq!(spec["pipelineInfo"]["name"], "my-pipe");
        let tasks = spec["root"]["dag"]["tasks"].as_object().unwrap();
        let names: Vec<&str> = tasks.keys().map(String::as_str).collect();
        assert_eq!(
            names.iter().copied().collect::<BTreeSet<_>>(),
            ["first-one", "last", "left", "right", PLAN_TASK, REPORT_TASK]
                .into_iter()
                .collect()
        );
        assert_eq!(tasks["first-one"]["dependentTasks"], json!([PLAN_TASK]));
        assert_eq!(tasks["last"]["dependentTasks"], json!(["left", "right"]));
        assert_eq!(tasks["left"]["retryPolicy"]["maxRetryCount"], 5);
        assert_eq!(tasks["right"]["retryPolicy"]["maxRetryCount"], 2);
        assert_eq!(
            tasks[REPORT_TASK]["triggerPolicy"]["strategy"],
            "ALL_UPSTREAM_TASKS_COMPLETED"
        );
        assert!(
            tasks
                .values()
                .all(|t| t["cachingOptions"]["enableCache"] == false)
        );

        let executors = &spec["deploymentSpec"]["executors"];
        let left = &executors["exec-left"]["container"];
        assert_eq!(
            left["args"],
            json!(["step", "exec", RUN_ID, "left"]),
            "the step's own name, not the task's"
        );
        assert_eq!(left["resources"]["resourceMemoryLimit"], "3584Mi");
        assert_eq!(left["resources"]["resourceCpuRequest"], "4");
        assert_eq!(
            left["resources"]["accelerator"],
            json!({"resourceType": "nvidia.com/gpu", "resourceCount": "2"})
        );
        let first = &executors["exec-first-one"]["container"];
        assert_eq!(first["args"][3], "first_one");
        assert_eq!(first["resources"]["resourceMemoryRequest"], "1536Mi");
        assert_eq!(
            first["resources"]["resourceCpuLimit"], "500m",
            "[pipeline] limits"
        );
        assert_eq!(
            first["env"],
            json!([
                {"name": "SLUICE_STORE", "value": "s3://b/p"},
                {"name": "SLUICE_METADATA_URL", "value": "postgres://ann@db/s"},
                {"name": "AWS_REGION", "value": "eu-west-1"},
            ])
        );
        assert!(exported.platform.is_none(), "no secrets, no platform spec");
    }

    #[test]
    fn secrets_are_referenced_by_every_executor_and_never_inlined() {
        let (plan, limits) = plan(DIAMOND);
        let mut o = options();
        o.secret_env = vec![
            SecretEnv {
                env: "PGPASSWORD".into(),
                secret: "db".into(),
                key: "password".into(),
            },
            SecretEnv {
                env: "AWS_SECRET_ACCESS_KEY".into(),
                secret: "s3".into(),
                key: "secret".into(),
            },
        ];
        let exported = export(&plan, &limits, &o).unwrap();
        let platform = exported.platform.as_ref().unwrap();
        let executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
            .as_object()
            .unwrap();
        assert_eq!(executors.len(), 6);
        let secrets = &executors["exec-sluice-plan"]["secretAsEnv"];
        assert_eq!(secrets[0]["secretName"], "db");
        assert_eq!(
            secrets[1]["keyToEnv"],
            json!([{"secretKey": "secret", "envVar": "AWS_SECRET_ACCESS_KEY"}])
        );
        let yaml = exported.to_yaml("PIPELINE DEFINITION");
        assert!(yaml.starts_with("# PIPELINE DEFINITION\n"));
        assert_eq!(yaml.matches("\n---\n").count(), 1, "two documents");

        o.env.push(("DB_PASSWORD".into(), "hunter2".into()));
        assert_eq!(
            export(&plan, &limits, &o).unwrap_err(),
            ExportError::CredentialInEnv("DB_PASSWORD".into())
        );
    }

    #[test]
    fn steps_that_would_share_a_task_name_are_refused() {
        let (plan, limits) = plan(
            "[pipeline]\nname = \"p\"\n[steps.a_b]\ncomponent = \"std:x\"\n[steps.a-b]\ncomponent = \"std:x\"\n",
        );
        assert_eq!(
            export(&plan, &limits, &options()).unwrap_err(),
            ExportError::TaskNameClash("a_b".into(), "a-b".into(), "a-b".into())
        );
    }

    #[test]
    fn check_finds_what_the_schema_does_not() {
        let (plan, limits) = plan(DIAMOND);
        let good = export(&plan, &limits, &options()).unwrap().spec;
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut spec = good.clone();
            f(&mut spec);
            check(&spec)
        };
        assert_eq!(
            broken(&|s| s["root"]["dag"]["tasks"]["left"]["dependentTasks"] = json!(["last"])),
            ["the tasks depend on each other in a cycle: last → left → last"]
        );
        assert_eq!(
            broken(
                &|s| s["root"]["dag"]["tasks"]["left"]["componentRef"]["name"] = "comp-gone".into()
            ),
            ["task `left` runs component `comp-gone`, which is not defined"]
        );
        assert_eq!(
            broken(&|s| {
                s["deploymentSpec"]["executors"]
                    .as_object_mut()
                    .unwrap()
                    .remove("exec-right");
            }),
            ["component `comp-right` runs executor `exec-right`, which is not defined"]
        );
        assert_eq!(
            broken(
                &|s| s["deploymentSpec"]["executors"]["exec-last"]["container"]["args"][2] =
                    "{{$.inputs.parameters['run']}}".into()
            ),
            [
                "executor `exec-last` uses placeholder {{$.inputs.parameters['run']}}, which nothing provides"
            ]
        );
        assert_eq!(
            broken(&|s| {
                s["root"]["dag"]["tasks"]["last"]["inputs"] = json!({});
            }),
            ["task `last` does not bind input parameter `run_id`"]
        );
        assert_eq!(
            broken(&|s| s["root"]["dag"]["tasks"]["last"]["dependentTasks"] = json!(["lefty"])),
            ["task `last` depends on `lefty`, which is not a task"]
        );
    }

    #[test]
    fn quantities_are_what_kubernetes_writes() {
        assert_eq!(quantity(1 << 30), "1Gi");
        assert_eq!(quantity(1536 << 20), "1536Mi");
        assert_eq!(quantity(1_000_000_000), "1000000000");
        assert_eq!(cpu_quantity(2000), "2");
        assert_eq!(cpu_quantity(250), "250m");
        assert_eq!(kfp_name("Train_Model.v2"), "train-model-v2");
    }
}
