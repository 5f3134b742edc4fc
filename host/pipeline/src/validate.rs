//! Checking a parsed spec against its components' manifests.
//!
//! [`validate`] resolves each step's component to its [`Manifest`] and checks
//! bindings, parameters, artifact kinds, data files and the shape of the step
//! graph, reporting every problem it finds rather than only the first. A
//! valid spec becomes a [`Plan`]: the steps in a deterministic topological
//! order, each with its manifest, its resolved parameters and the kinds of
//! its inputs.

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span, did_you_mean, suggest};
use crate::spec::{Binding, ComponentRef, DataInput, Source, Spec, StepSpec};
use sluice_runtime::manifest::{ArtifactKind, Manifest, Value, ValueType};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A validated pipeline, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The pipeline's name.
    pub name: String,
    /// The pipeline's description, if any.
    pub description: Option<String>,
    /// The data inputs, in file order; every file exists.
    pub data: Vec<DataInput>,
    /// The steps in topological order: every step comes after the steps it
    /// consumes from; among steps free to go next, file order decides.
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.step.name == name)
    }
}

/// One step of a [`Plan`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// The step as written in the spec.
    pub step: StepSpec,
    /// Its component's manifest.
    pub manifest: Manifest,
    /// Every parameter with a value — given in the spec (integers widened
    /// where the manifest declares a float) or else the manifest's default —
    /// sorted by name.
    pub params: Vec<(String, Value)>,
    /// Its bound inputs, in file order, with the kind each port takes.
    pub inputs: Vec<PlannedInput>,
}

impl PlannedStep {
    /// The step's name.
    pub fn name(&self) -> &str {
        &self.step.name
    }
}

/// One bound input of a [`PlannedStep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedInput {
    /// The input port.
    pub port: String,
    /// What the port takes (and the source produces).
    pub kind: ArtifactKind,
    /// What feeds it.
    pub source: Source,
}

/// Looks up the manifest of a component; the error says why it cannot (for
/// `std:` names it should list the available components).
pub type Resolver<'a> = dyn Fn(&ComponentRef) -> Result<Manifest, String> + 'a;

/// Checks `spec` against the manifests that `manifests` provides and orders
/// its steps.
///
/// `manifests` is called once per distinct component. All problems are
/// reported, in source order: unresolvable components, unknown or unbound
/// ports, unknown, missing or mistyped parameters, kind mismatches, unknown
/// steps, output ports and data inputs, missing data files, duplicate names
/// and cycles.
pub fn validate(spec: &Spec, manifests: &Resolver<'_>) -> Result<Plan, Diagnostics> {
    validate_with(spec, manifests, true)
}

/// [`validate`], with the data files looked for on disk only when
/// `data_on_disk`: a published spec's data is in the store, not beside it
/// (see `execute::package`).
pub fn validate_with(
    spec: &Spec,
    manifests: &Resolver<'_>,
    data_on_disk: bool,
) -> Result<Plan, Diagnostics> {
    let mut v = Validator {
        spec,
        diags: Vec::new(),
        manifests: Vec::new(),
        index: HashMap::new(),
        suggested: HashSet::new(),
    };
    v.duplicates();
    if data_on_disk {
        v.data_files();
    }
    v.resolve(manifests);
    for (i, step) in spec.steps.iter().enumerate() {
        v.bindings(i, step);
        v.unbound(i, step);
        v.params(i, step);
    }
    let order = v.order();
    if !v.diags.is_empty() {
        let mut diags = Diagnostics(v.diags);
        diags.sort();
        return Err(diags);
    }
    let steps = order
        .into_iter()
        .map(|i| {
            let step = &spec.steps[i];
            let manifest = v.manifests[i].clone().expect("resolved without errors");
            let inputs = step
                .inputs
                .iter()
                .map(|b| PlannedInput {
                    port: b.port.clone(),
                    kind: manifest.find_input(&b.port).expect("checked").kind,
                    source: b.source.clone(),
                })
                .collect();
            PlannedStep {
                params: resolve_params(step, &manifest),
                step: step.clone(),
                manifest,
                inputs,
            }
        })
        .collect();
    Ok(Plan {
        name: spec.name.clone(),
        description: spec.description.clone(),
        data: spec.data.clone(),
        steps,
    })
}

/// The spec's values (widened to float where declared) plus the manifest's
/// defaults for the rest, sorted by name.
fn resolve_params(step: &StepSpec, manifest: &Manifest) -> Vec<(String, Value)> {
    let mut params: Vec<(String, Value)> = step
        .params
        .iter()
        .map(|p| {
            let value = match (&p.value, manifest.find_param(&p.name).map(|d| d.value_type)) {
                (Value::Integer(i), Some(ValueType::Float)) => Value::Float(*i as f64),
                (v, _) => v.clone(),
            };
            (p.name.clone(), value)
        })
        .collect();
    for decl in &manifest.params {
        if step.param(&decl.name).is_none()
            && let Some(default) = &decl.default
        {
            params.push((decl.name.clone(), default.clone()));
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

struct Validator<'s> {
    spec: &'s Spec,
    diags: Vec<Diagnostic>,
    /// The manifest of each step, by index; `None` where it did not resolve.
    manifests: Vec<Option<Manifest>>,
    /// Step name → index of its first definition.
    index: HashMap<&'s str, usize>,
    /// (step, "port NAME" or "param NAME") already suggested for a misspelt
    /// name; not reported again as unbound or missing.
    suggested: HashSet<(usize, String)>,
}

impl<'s> Validator<'s> {
    fn error(&mut self, code: Code, span: Span, message: String, help: Option<String>) {
        let d = self
            .spec
            .diagnostic(code, span, message)
            .with_help_opt(help);
        self.diags.push(d);
    }

    fn line_of(&self, span: Span) -> usize {
        crate::diagnostic::line_column(&self.spec.source, span.start).0
    }

    /// Duplicate step, data, port and parameter names. The TOML parser already
    /// rejects duplicate keys; this guards specs built or edited in code.
    fn duplicates(&mut self) {
        let spec = self.spec;
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for d in &spec.data {
            self.duplicate(&mut seen, &d.name, d.name_span, "data input");
        }
        let mut seen = HashMap::new();
        for (i, s) in spec.steps.iter().enumerate() {
            self.index.entry(&s.name).or_insert(i);
            self.duplicate(&mut seen, &s.name, s.name_span, "step");
        }
        for s in &spec.steps {
            let mut seen = HashMap::new();
            for b in &s.inputs {
                let what = format!("binding of input port (step `{}`)", s.name);
                self.duplicate(&mut seen, &b.port, b.port_span, &what);
            }
            let mut seen = HashMap::new();
            for p in &s.params {
                let what = format!("parameter (step `{}`)", s.name);
                self.duplicate(&mut seen, &p.name, p.name_span, &what);
            }
        }
    }

    fn duplicate(
        &mut self,
        seen: &mut HashMap<&'s str, Span>,
        name: &'s str,
        span: Span,
        what: &str,
    ) {
        if let Some(&first) = seen.get(name) {
            let line = self.line_of(first);
            self.error(
                Code::DuplicateName,
                span,
                format!("duplicate {what} `{name}`"),
                Some(format!("first defined on line {line}")),
            );
        } else {
            seen.insert(name, span);
        }
    }

    fn data_files(&mut self) {
        for d in &self.spec.data {
            if d.kind != crate::spec::DataKind::Model && !d.path.exists() {
                self.error(
                    Code::MissingDataFile,
                    d.span,
                    format!(
                        "data file `{}` of input `{}` does not exist",
                        d.raw_path, d.name
                    ),
                    Some(format!("looked for `{}`", d.path.display())),
                );
            }
        }
    }

    fn resolve(&mut self, resolver: &Resolver<'_>) {
        let mut cache: HashMap<&ComponentRef, Result<Manifest, String>> = HashMap::new();
        for step in &self.spec.steps {
            let result = cache
                .entry(&step.component)
                .or_insert_with(|| resolver(&step.component));
            match result {
                Ok(m) => self.manifests.push(Some(m.clone())),
                Err(e) => {
                    let help = e.clone();
                    self.manifests.push(None);
                    self.error(
                        Code::UnknownComponent,
                        step.component_span,
                        format!(
                            "cannot resolve component `{}` of step `{}`",
                            step.component, step.name
                        ),
                        Some(help),
                    );
                }
            }
        }
    }

    fn bindings(&mut self, i: usize, step: &StepSpec) {
        let manifest = self.manifests[i].clone();
        for b in &step.inputs {
            let port = match &manifest {
                None => None,
                Some(m) => match m.find_input(&b.port) {
                    Some(port) => Some(port.kind),
                    None => {
                        let names: Vec<&str> = m.inputs.iter().map(|p| p.name.as_str()).collect();
                        let list = if names.is_empty() {
                            format!("component {} takes no inputs", step.component)
                        } else {
                            format!("valid ports: {}", names.join(", "))
                        };
                        if let Some(c) = did_you_mean(&b.port, names.iter().copied()) {
                            self.suggested.insert((i, format!("port {c}")));
                        }
                        self.error(
                            Code::UnknownInputPort,
                            b.port_span,
                            format!(
                                "unknown input port `{}` on step `{}` (component {})",
                                b.port, step.name, step.component
                            ),
                            Some(suggest(&b.port, names.iter().copied(), list)),
                        );
                        None
                    }
                },
            };
            let source = self.source_kind(b);
            if let (Some(takes), Some((gives, what))) = (port, source)
                && takes != gives
            {
                let help = (matches!(b.source, Source::Data(_))
                    && gives == ArtifactKind::File
                    && takes == ArtifactKind::Table)
                    .then(|| {
                        "ingest the file with a step first (e.g. `std:ingest-csv`), or declare a \
                         Parquet input as `{ path = \"...\", kind = \"table\" }`"
                            .to_owned()
                    });
                self.error(
                    Code::KindMismatch,
                    b.span,
                    format!(
                        "{what} is {} but port `{}` of step `{}` takes {}",
                        with_article(gives),
                        b.port,
                        step.name,
                        with_article(takes)
                    ),
                    help,
                );
            }
        }
    }

    /// The kind a binding's source produces and how to name it in messages,
    /// or `None` (after reporting, where there is something to report).
    fn source_kind(&mut self, b: &Binding) -> Option<(ArtifactKind, String)> {
        match &b.source {
            Source::Data(name) => match self.spec.data_input(name) {
                Some(d) => Some((d.kind.artifact_kind(), format!("data input `{name}`"))),
                None => {
                    let names: Vec<&str> = self.spec.data.iter().map(|d| d.name.as_str()).collect();
                    let list = if names.is_empty() {
                        "no data inputs are declared; add them under [data]".to_owned()
                    } else {
                        format!("declared data inputs: {}", names.join(", "))
                    };
                    self.error(
                        Code::UnknownData,
                        b.span,
                        format!("unknown data input `{name}` in `{}`", b.source),
                        Some(suggest(name, names.iter().copied(), list)),
                    );
                    None
                }
            },
            Source::Step { step, port } => {
                let Some(&j) = self.index.get(step.as_str()) else {
                    let names: Vec<&str> =
                        self.spec.steps.iter().map(|s| s.name.as_str()).collect();
                    let list = format!("steps: {}", names.join(", "));
                    self.error(
                        Code::UnknownStep,
                        b.span,
                        format!("unknown step `{step}` in `{}`", b.source),
                        Some(suggest(step, names.iter().copied(), list)),
                    );
                    return None;
                };
                let m = self.manifests[j].as_ref()?;
                match m.find_output(port) {
                    Some(p) => Some((p.kind, format!("`{}`", b.source))),
                    None => {
                        let names: Vec<&str> = m.outputs.iter().map(|p| p.name.as_str()).collect();
                        let list = if names.is_empty() {
                            format!("step `{step}` has no outputs")
                        } else {
                            format!("outputs of `{step}`: {}", names.join(", "))
                        };
                        let help = suggest(port, names.iter().copied(), list);
                        let message = format!(
                            "step `{step}` has no output port `{port}` (component {})",
                            self.spec.steps[j].component
                        );
                        self.error(Code::UnknownOutputPort, b.span, message, Some(help));
                        None
                    }
                }
            }
        }
    }

    fn unbound(&mut self, i: usize, step: &StepSpec) {
        let Some(m) = &self.manifests[i] else { return };
        let missing: Vec<_> = m
            .inputs
            .iter()
            .filter(|p| !p.optional && step.input(&p.name).is_none())
            .filter(|p| !self.suggested.contains(&(i, format!("port {}", p.name))))
            .map(|p| (p.name.clone(), p.kind))
            .collect();
        for (port, kind) in missing {
            self.error(
                Code::UnboundInput,
                step.inputs_span.unwrap_or(step.span),
                format!(
                    "required input port `{port}` of step `{}` is not bound",
                    step.name
                ),
                Some(format!(
                    "it takes {}; bind it in `inputs`, e.g. `{port} = \"STEP.PORT\"`",
                    with_article(kind)
                )),
            );
        }
    }

    fn params(&mut self, i: usize, step: &StepSpec) {
        let Some(m) = self.manifests[i].clone() else {
            return;
        };
        for p in &step.params {
            match m.find_param(&p.name) {
                None => {
                    let names: Vec<&str> = m.params.iter().map(|d| d.name.as_str()).collect();
                    let list = if names.is_empty() {
                        format!("component {} takes no parameters", step.component)
                    } else {
                        format!("valid parameters: {}", names.join(", "))
                    };
                    if let Some(c) = did_you_mean(&p.name, names.iter().copied()) {
                        self.suggested.insert((i, format!("param {c}")));
                    }
                    self.error(
                        Code::UnknownParam,
                        p.name_span,
                        format!(
                            "unknown parameter `{}` for step `{}` (component {})",
                            p.name, step.name, step.component
                        ),
                        Some(suggest(&p.name, names.iter().copied(), list)),
                    );
                }
                Some(decl) if !decl.value_type.accepts(p.value.value_type()) => {
                    self.error(
                        Code::ParamType,
                        p.span,
                        format!(
                            "parameter `{}` of step `{}` must be of type {}, found {} {}",
                            p.name,
                            step.name,
                            decl.value_type,
                            p.value.value_type(),
                            p.value
                        ),
                        (!decl.doc.is_empty()).then(|| format!("`{}`: {}", decl.name, decl.doc)),
                    );
                }
                Some(_) => {}
            }
        }
        for decl in &m.params {
            if decl.required
                && step.param(&decl.name).is_none()
                && !self
                    .suggested
                    .contains(&(i, format!("param {}", decl.name)))
            {
                let mut help = format!(
                    "set it in `params`: `{} = ...` ({})",
                    decl.name, decl.value_type
                );
                if !decl.doc.is_empty() {
                    help.push_str(&format!("; {}", decl.doc));
                }
                self.error(
                    Code::MissingParam,
                    step.params_span.unwrap_or(step.span),
                    format!(
                        "missing required parameter `{}` for step `{}` (component {})",
                        decl.name, step.name, step.component
                    ),
                    Some(help),
                );
            }
        }
    }

    /// Topological order (ties broken by file order); reports cycles.
    fn order(&mut self) -> Vec<usize> {
        let spec = self.spec;
        let n = spec.steps.len();
        // deps[i]: the steps step i consumes from.
        let deps: Vec<BTreeSet<usize>> = spec
            .steps
            .iter()
            .map(|s| {
                s.inputs
                    .iter()
                    .filter_map(|b| match &b.source {
                        Source::Step { step, .. } => self.index.get(step.as_str()).copied(),
                        Source::Data(_) => None,
                    })
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                dependents[j].push(i);
            }
        }
        let mut waiting: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    ready.insert(k);
                }
            }
        }
        if order.len() < n {
            self.cycles(&deps, &waiting);
        }
        order
    }

    /// Reports each cycle among the steps left unordered (`waiting[i] > 0`).
    /// Every such step depends on another such step, so walking dependencies
    /// from any of them must come back to a step already on the walk.
    fn cycles(&mut self, deps: &[BTreeSet<usize>], waiting: &[usize]) {
        let spec = self.spec;
        let left = |i: usize| waiting[i] > 0;
        let mut explained = vec![false; deps.len()];
        for start in (0..deps.len()).filter(|&i| left(i)) {
            if explained[start] {
                continue;
            }
            let mut path = vec![start];
            let cycle = loop {
                let cur = *path.last().expect("non-empty");
                let next = *deps[cur]
                    .iter()
                    .find(|&&j| left(j))
                    .expect("an unordered step depends on another");
                if let Some(pos) = path.iter().position(|&j| j == next) {
                    break Some(path[pos..].to_vec());
                }
                if explained[next] {
                    break None;
                }
                path.push(next);
            };
            for &j in &path {
                explained[j] = true;
            }
            let Some(mut cycle) = cycle else { continue };
            // `cycle` lists consumers before producers; show data flow,
            // starting from the step that comes first in the file.
            cycle.reverse();
            let first = (0..cycle.len())
                .min_by_key(|&k| cycle[k])
                .expect("non-empty");
            cycle.rotate_left(first);
            let names: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|&j| spec.steps[j].name.as_str())
                .collect();
            // Point at the binding by which the first step consumes the last.
            let consumer = &spec.steps[cycle[0]];
            let producer = &spec.steps[*cycle.last().expect("non-empty")].name;
            let span = consumer
                .inputs
                .iter()
                .find(|b| matches!(&b.source, Source::Step { step, .. } if step == producer))
                .map_or(consumer.name_span, |b| b.span);
            self.error(
                Code::Cycle,
                span,
                format!("cycle between steps: {}", names.join(" -> ")),
                Some(
                    "a step cannot consume its own outputs, directly or through other steps".into(),
                ),
            );
        }
    }
}

/// `a table`, `an …`, or the bare plural-like kinds (`statistics`, `metrics`).
fn with_article(kind: ArtifactKind) -> String {
    match kind {
        ArtifactKind::Statistics | ArtifactKind::Metrics => kind.as_str().to_owned(),
        _ => format!("a {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::manifest::{ParamSpec, Port};

    fn port(name: &str, kind: ArtifactKind, optional: bool) -> Port {
        Port {
            name: name.into(),
            kind,
            optional,
            doc: String::new(),
        }
    }

    fn param(
        name: &str,
        value_type: ValueType,
        default: Option<Value>,
        required: bool,
    ) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            value_type,
            default,
            required,
            doc: String::new(),
        }
    }

    fn manifest(
        name: &str,
        inputs: Vec<Port>,
        outputs: Vec<Port>,
        params: Vec<ParamSpec>,
    ) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1.0.0".into(),
            doc: String::new(),
            inputs,
            outputs,
            params,
        }
    }

    /// A fake resolver with four standard components.
    fn resolver(c: &ComponentRef) -> Result<Manifest, String> {
        use ArtifactKind::*;
        match c {
            ComponentRef::Std(name) => match name.as_str() {
                "ingest-csv" => Ok(manifest(
                    name,
                    vec![port("file", File, false)],
                    vec![port("data", Table, false)],
                    vec![
                        param(
                            "delimiter",
                            ValueType::Text,
                            Some(Value::Text(",".into())),
                            false,
                        ),
                        param(
                            "header",
                            ValueType::Boolean,
                            Some(Value::Boolean(true)),
                            false,
                        ),
                    ],
                )),
                "statistics" => Ok(manifest(
                    name,
                    vec![port("data", Table, false)],
                    vec![port("statistics", Statistics, false)],
                    vec![param(
                        "bins",
                        ValueType::Integer,
                        Some(Value::Integer(10)),
                        false,
                    )],
                )),
                "needs" => Ok(manifest(
                    name,
                    vec![port("data", Table, true)],
                    vec![port("data", Table, false)],
                    vec![
                        ParamSpec {
                            doc: "the target column".into(),
                            ..param("label", ValueType::Text, None, true)
                        },
                        param("rate", ValueType::Float, Some(Value::Float(0.1)), false),
                        param("seed", ValueType::Integer, None, false),
                    ],
                )),
                "join" => Ok(manifest(
                    name,
                    vec![port("left", Table, false), port("right", Table, true)],
                    vec![port("data", Table, false)],
                    vec![],
                )),
                _ => Err(format!(
                    "no standard component `{name}`; available: ingest-csv, join, needs, statistics"
                )),
            },
            other => Err(format!("cannot load `{other}`")),
        }
    }

    const HEAD: &str = "[pipeline]\nname = \"t\"\n\n[data]\niris = \"data/iris.csv\"\n\n";

    /// Validates `HEAD` + `steps`, written as `pipeline.toml` in a temporary
    /// directory that holds `data/iris.csv`.
    fn check(steps: &str) -> Result<Plan, Diagnostics> {
        check_with(steps, true)
    }

    fn check_with(steps: &str, data_file: bool) -> Result<Plan, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        if data_file {
            std::fs::create_dir(dir.path().join("data")).unwrap();
            std::fs::write(dir.path().join("data/iris.csv"), "a,b\n1,2\n").unwrap();
        }
        let src = format!("{HEAD}{steps}");
        let spec = Spec::parse(&dir.path().join("pipeline.toml"), &src).unwrap();
        validate(&spec, &resolver)
    }

    /// The only diagnostic of a failed validation.
    fn one(steps: &str) -> Diagnostic {
        let diags = check(steps).expect_err("should fail");
        assert_eq!(diags.len(), 1, "{diags}");
        diags.0.into_iter().next().unwrap()
    }

    fn at(d: &Diagnostic) -> (usize, usize) {
        (d.line, d.column)
    }

    const INGEST: &str =
        "[steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.iris\" }\n";

    #[test]
    fn valid_spec_gives_ordered_plan_with_defaults() {
        // `stats` comes first in the file but consumes `ingest`.
        let plan = check(
            "[steps.stats]\ncomponent = \"std:statistics\"\ninputs = { data = \"ingest.data\" }\n\n\
             [steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.iris\" }\nparams = { delimiter = \";\" }\n\n\
             [steps.model]\ncomponent = \"std:needs\"\nparams = { label = \"y\", rate = 1 }\n"
        )
        .unwrap();
        assert_eq!(plan.name, "t");
        let names: Vec<_> = plan.steps.iter().map(PlannedStep::name).collect();
        assert_eq!(names, ["ingest", "stats", "model"]);

        let ingest = plan.step("ingest").unwrap();
        assert_eq!(ingest.manifest.name, "ingest-csv");
        assert_eq!(
            ingest.params,
            [
                ("delimiter".to_owned(), Value::Text(";".into())),
                ("header".to_owned(), Value::Boolean(true)),
            ]
        );
        assert_eq!(
            ingest.inputs,
            [PlannedInput {
                port: "file".into(),
                kind: ArtifactKind::File,
                source: Source::Data("iris".into()),
            }]
        );
        let stats = plan.step("stats").unwrap();
        assert_eq!(stats.params, [("bins".to_owned(), Value::Integer(10))]);
        assert_eq!(stats.inputs[0].kind, ArtifactKind::Table);
        // Integers are widened where a float is declared; `seed` has no default.
        let model = plan.step("model").unwrap();
        assert_eq!(
            model.params,
            [
                ("label".to_owned(), Value::Text("y".into())),
                ("rate".to_owned(), Value::Float(1.0)),
            ]
        );
        assert!(model.inputs.is_empty());
    }

    #[test]
    fn topological_order_is_deterministic() {
        // A diamond written bottom-up: d <- {c, b} <- a.
        let steps = "[steps.d]\ncomponent = \"std:join\"\ninputs = { left = \"b.data\", right = \"c.data\" }\n\
                     [steps.c]\ncomponent = \"std:join\"\ninputs = { left = \"a.data\" }\n\
                     [steps.b]\ncomponent = \"std:join\"\ninputs = { left = \"a.data\" }\n\
                     [steps.a]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.iris\" }\n\
                     [steps.e]\ncomponent = \"std:statistics\"\ninputs = { data = \"a.data\" }\n";
        for _ in 0..3 {
            let plan = check(steps).unwrap();
            let names: Vec<_> = plan.steps.iter().map(PlannedStep::name).collect();
            // Among steps ready together, file order decides: after `a`,
            // `c` before `b` and `e`; once `b` is done, `d` precedes `e`.
            assert_eq!(names, ["a", "c", "b", "d", "e"]);
        }
    }

    #[test]
    fn unknown_component() {
        let d = one("[steps.x]\ncomponent = \"std:nope\"\n");
        assert_eq!(d.code, Code::UnknownComponent);
        assert_eq!(d.message, "cannot resolve component `std:nope` of step `x`");
        assert_eq!(
            d.help.as_deref(),
            Some("no standard component `nope`; available: ingest-csv, join, needs, statistics")
        );
        assert_eq!(at(&d), (8, 13));
    }

    #[test]
    fn unknown_input_port() {
        let d = one(&format!(
            "{INGEST}\n[steps.stats]\ncomponent = \"std:statistics\"\ninputs = {{ dta = \"ingest.data\" }}\n"
        ));
        assert_eq!(d.code, Code::UnknownInputPort);
        assert_eq!(
            d.message,
            "unknown input port `dta` on step `stats` (component std:statistics)"
        );
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `data`? valid ports: data")
        );
        assert_eq!(at(&d), (13, 12));
        let text = d.to_string();
        assert!(
            text.starts_with(
                "error: unknown input port `dta` on step `stats` (component std:statistics)\n  --> "
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "pipeline.toml:13:12\n   |\n13 | inputs = { dta = \"ingest.data\" }\n   |            ^^^\n   = help: did you mean `data`? valid ports: data"
            ),
            "{text}"
        );
    }

    #[test]
    fn unbound_required_input() {
        let d = one("[steps.stats]\ncomponent = \"std:statistics\"\n");
        assert_eq!(d.code, Code::UnboundInput);
        assert_eq!(
            d.message,
            "required input port `data` of step `stats` is not bound"
        );
        assert_eq!(
            d.help.as_deref(),
            Some("it takes a table; bind it in `inputs`, e.g. `data = \"STEP.PORT\"`")
        );
        assert_eq!(at(&d), (7, 1));
        // With an `inputs` table, it points there; optional ports may stay unbound.
        let d = one(
            "[steps.j]\ncomponent = \"std:join\"\ninputs = { right = \"k.data\" }\n[steps.k]\ncomponent = \"std:needs\"\nparams.label = \"y\"\n",
        );
        assert_eq!(
            d.message,
            "required input port `left` of step `j` is not bound"
        );
        assert_eq!(at(&d), (9, 10));
    }

    #[test]
    fn unknown_param() {
        let d = one(&format!("{INGEST}params = {{ delimeter = \";\" }}\n"));
        assert_eq!(d.code, Code::UnknownParam);
        assert_eq!(
            d.message,
            "unknown parameter `delimeter` for step `ingest` (component std:ingest-csv)"
        );
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `delimiter`? valid parameters: delimiter, header")
        );
        assert_eq!(at(&d), (10, 12));
    }

    #[test]
    fn missing_required_param() {
        let d = one("[steps.m]\ncomponent = \"std:needs\"\nparams = { rate = 0.5 }\n");
        assert_eq!(d.code, Code::MissingParam);
        assert_eq!(
            d.message,
            "missing required parameter `label` for step `m` (component std:needs)"
        );
        assert_eq!(
            d.help.as_deref(),
            Some("set it in `params`: `label = ...` (text); the target column")
        );
        assert_eq!(at(&d), (9, 10));
    }

    #[test]
    fn param_type_mismatch() {
        let d = one(&format!(
            "{INGEST}[steps.stats]\ncomponent = \"std:statistics\"\ninputs = {{ data = \"ingest.data\" }}\nparams = {{ bins = \"ten\" }}\n"
        ));
        assert_eq!(d.code, Code::ParamType);
        assert_eq!(
            d.message,
            "parameter `bins` of step `stats` must be of type integer, found text \"ten\""
        );
        assert_eq!(at(&d), (13, 19));
    }

    #[test]
    fn kind_mismatch_between_steps() {
        let d = one(&format!(
            "{INGEST}[steps.again]\ncomponent = \"std:ingest-csv\"\ninputs = {{ file = \"ingest.data\" }}\n"
        ));
        assert_eq!(d.code, Code::KindMismatch);
        assert_eq!(
            d.message,
            "`ingest.data` is a table but port `file` of step `again` takes a file"
        );
        assert_eq!(d.help, None);
        assert_eq!(at(&d), (12, 19));
    }

    #[test]
    fn data_input_of_wrong_kind() {
        let d = one(
            "[steps.stats]\ncomponent = \"std:statistics\"\ninputs = { data = \"data.iris\" }\n",
        );
        assert_eq!(d.code, Code::KindMismatch);
        assert_eq!(
            d.message,
            "data input `iris` is a file but port `data` of step `stats` takes a table"
        );
        assert!(d.help.as_deref().unwrap().contains("std:ingest-csv"));
        assert_eq!(at(&d), (9, 19));
    }

    #[test]
    fn unknown_step() {
        let d = one(&format!(
            "{INGEST}[steps.stats]\ncomponent = \"std:statistics\"\ninputs = {{ data = \"ingst.data\" }}\n"
        ));
        assert_eq!(d.code, Code::UnknownStep);
        assert_eq!(d.message, "unknown step `ingst` in `ingst.data`");
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `ingest`? steps: ingest, stats")
        );
        assert_eq!(at(&d), (12, 19));
    }

    #[test]
    fn unknown_output_port() {
        let d = one(&format!(
            "{INGEST}[steps.stats]\ncomponent = \"std:statistics\"\ninputs = {{ data = \"ingest.dat\" }}\n"
        ));
        assert_eq!(d.code, Code::UnknownOutputPort);
        assert_eq!(
            d.message,
            "step `ingest` has no output port `dat` (component std:ingest-csv)"
        );
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `data`? outputs of `ingest`: data")
        );
        assert_eq!(at(&d), (12, 19));
    }

    #[test]
    fn unknown_data_input() {
        let d = one(
            "[steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.irs\" }\n",
        );
        assert_eq!(d.code, Code::UnknownData);
        assert_eq!(d.message, "unknown data input `irs` in `data.irs`");
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `iris`? declared data inputs: iris")
        );
        assert_eq!(at(&d), (9, 19));
    }

    #[test]
    fn missing_data_file() {
        let diags = check_with(INGEST, false).unwrap_err();
        assert_eq!(diags.len(), 1, "{diags}");
        let d = &diags.0[0];
        assert_eq!(d.code, Code::MissingDataFile);
        assert_eq!(
            d.message,
            "data file `data/iris.csv` of input `iris` does not exist"
        );
        assert!(d.help.as_deref().unwrap().starts_with("looked for `"));
        assert_eq!(at(d), (5, 8));
    }

    #[test]
    fn duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let src = format!(
            "{HEAD}{INGEST}[steps.stats]\ncomponent = \"std:statistics\"\ninputs = {{ data = \"ingest.data\" }}\n"
        );
        let mut spec = Spec::parse(&dir.path().join("p.toml"), &src).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/iris.csv"), "").unwrap();
        // Specs built in code can repeat names the TOML parser would reject.
        let mut again = spec.steps[0].clone();
        again.name_span = spec.steps[1].name_span;
        spec.steps.push(again);
        let stats = &mut spec.steps[1];
        stats.inputs.push(stats.inputs[0].clone());
        let diags = validate(&spec, &resolver).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| {
                (
                    d.code,
                    d.message.as_str(),
                    d.help.as_deref(),
                    d.line,
                    d.column,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::DuplicateName,
                    "duplicate step `ingest`",
                    Some("first defined on line 7"),
                    10,
                    8
                ),
                (
                    Code::DuplicateName,
                    "duplicate binding of input port (step `stats`) `data`",
                    Some("first defined on line 12"),
                    12,
                    12
                ),
            ]
        );
    }

    #[test]
    fn cycles_are_named() {
        let diags = check(
            "[steps.a]\ncomponent = \"std:join\"\ninputs = { left = \"b.data\" }\n\
             [steps.b]\ncomponent = \"std:join\"\ninputs = { left = \"a.data\" }\n\
             [steps.c]\ncomponent = \"std:statistics\"\ninputs = { data = \"b.data\" }\n\
             [steps.s]\ncomponent = \"std:join\"\ninputs = { left = \"s.data\" }\n",
        )
        .unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.message.as_str(), d.line, d.column))
            .collect();
        assert_eq!(
            got,
            [
                (Code::Cycle, "cycle between steps: a -> b -> a", 9, 19),
                (Code::Cycle, "cycle between steps: s -> s", 18, 19),
            ]
        );
    }

    #[test]
    fn longer_cycle_starts_at_first_step_in_file() {
        let diags = check(
            "[steps.x]\ncomponent = \"std:join\"\ninputs = { left = \"z.data\" }\n\
             [steps.y]\ncomponent = \"std:join\"\ninputs = { left = \"x.data\" }\n\
             [steps.z]\ncomponent = \"std:join\"\ninputs = { left = \"y.data\" }\n",
        )
        .unwrap_err();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags.0[0].message, "cycle between steps: x -> y -> z -> x");
        assert_eq!(at(&diags.0[0]), (9, 19));
    }

    #[test]
    fn all_errors_are_reported_in_source_order() {
        let diags = check_with(
            "[steps.stats]\ncomponent = \"std:statistics\"\ninputs = { dta = \"ingst.data\" }\nparams = { bnis = 3 }\n\
             [steps.model]\ncomponent = \"std:needs\"\n\
             [steps.other]\ncomponent = \"./missing.wasm\"\n",
            false,
        )
        .unwrap_err();
        let got: Vec<_> = diags.iter().map(|d| (d.code, d.line, d.column)).collect();
        assert_eq!(
            got,
            [
                (Code::MissingDataFile, 5, 8),
                (Code::UnknownInputPort, 9, 12),
                (Code::UnknownStep, 9, 18),
                (Code::UnknownParam, 10, 12),
                (Code::MissingParam, 11, 1),
                (Code::UnknownComponent, 14, 13),
            ]
        );
        let text = diags.to_string();
        assert_eq!(text.matches("error: ").count(), 6);
        assert!(text.contains("\n\nerror: "));
    }

    #[test]
    fn misspelt_required_names_are_reported_once() {
        let diags = check("[steps.m]\ncomponent = \"std:join\"\ninputs = { lfet = \"n.data\" }\n[steps.n]\ncomponent = \"std:needs\"\nparams = { lable = \"y\" }\n")
            .unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.help.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::UnknownInputPort,
                    "did you mean `left`? valid ports: left, right".to_owned()
                ),
                (
                    Code::UnknownParam,
                    "did you mean `label`? valid parameters: label, rate, seed".to_owned()
                ),
            ]
        );
    }
}
