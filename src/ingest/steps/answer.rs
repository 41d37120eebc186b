//! What a synchronous step's answer does to the event, without I/O: a 2xx JSON answer
//! `{"parameters": {…}, "response": {…}, "shared_variables": {…}}` sets (or, with `null`,
//! removes) parameters, response properties and shared variables. The changed parameters are
//! validated against the catalog again, response properties against their declared types, and
//! every change is recorded with the step that made it.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::catalog::{validate, validate_response, ParamProblem};
use crate::model::{EventDefinition, ParamChange, Pipeline, Stage};

/// The keys a step's answer may hold.
pub const KEYS: [&str; 3] = ["parameters", "response", "shared_variables"];

/// A step's answer, as sent.
#[derive(Debug, Default, Deserialize)]
struct Reply {
    #[serde(default, deserialize_with = "object_or_null")]
    parameters: Map<String, Value>,
    #[serde(default, deserialize_with = "object_or_null")]
    response: Map<String, Value>,
    #[serde(default, deserialize_with = "object_or_null")]
    shared_variables: Map<String, Value>,
    /// Anything else: not Herald's to read (a receiver written for Dataverse may answer with
    /// its own JSON); logged, not refused, so such receivers keep working.
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// A JSON object, with `null` read as an empty one.
fn object_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

/// The shared variables of one event, as JSON, at most: they travel in a header of every
/// later step's call, and receivers refuse large headers.
pub const SHARED_VARIABLES_LIMIT: usize = 8 * 1024;

/// Why a step's answer cannot be applied: each problem names its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerProblems(pub Vec<ParamProblem>);

impl AnswerProblems {
    fn one(field: &str, problem: impl Into<String>) -> Self {
        Self(vec![ParamProblem {
            parameter: field.to_owned(),
            problem: problem.into(),
        }])
    }
}

/// The event as the steps have left it so far.
#[derive(Debug, Clone)]
pub struct Run<'d> {
    definition: &'d EventDefinition,
    /// The parameters, valid against the catalog after every step.
    pub params: Map<String, Value>,
    /// What the steps did.
    pub pipeline: Pipeline,
}

impl<'d> Run<'d> {
    /// The event before any step, with its parameters as the caller sent them (already valid).
    pub fn new(definition: &'d EventDefinition, params: Map<String, Value>) -> Self {
        Self {
            definition,
            params,
            pipeline: Pipeline::default(),
        }
    }

    /// Applies the JSON answer `body` of `step` at `stage`: all of it, or nothing when any
    /// part is wrong. The keys it ignored are returned, for the log.
    pub fn apply(
        &mut self,
        step: &str,
        stage: Stage,
        body: &[u8],
    ) -> Result<Vec<String>, AnswerProblems> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| AnswerProblems::one("", format!("the answer is not valid JSON: {e}")))?;
        if !value.is_object() {
            // A bare JSON value (`"ok"`, `true`) sets nothing; the step accepted the event.
            return Ok(Vec::new());
        }
        let reply: Reply = serde_json::from_value(value).map_err(|e| {
            AnswerProblems::one(
                "",
                format!(
                    "`parameters`, `response` and `shared_variables` must be JSON objects: {e}"
                ),
            )
        })?;
        if stage == Stage::PostOperation && !reply.parameters.is_empty() {
            return Err(AnswerProblems::one(
                "parameters",
                "a post_operation step cannot change parameters: the operation has run on them (set `response` or `shared_variables`)",
            ));
        }
        let reply_names: Vec<String> = reply.parameters.keys().cloned().collect();
        let mut params = self.params.clone();
        let mut changes = Vec::new();
        for (name, to) in reply.parameters {
            let from = if to.is_null() {
                params.remove(&name)
            } else {
                params.insert(name.clone(), to.clone())
            };
            let to = (!to.is_null()).then_some(to);
            if from != to {
                changes.push(ParamChange {
                    step: step.to_owned(),
                    stage,
                    parameter: name,
                    from,
                    to,
                });
            }
        }
        let unknown = |name: &String| self.definition.parameter(name).is_none();
        if !changes.is_empty() || reply_names.iter().any(unknown) {
            validate(self.definition, &params).map_err(AnswerProblems)?;
            if let Some(name) = reply_names.iter().find(|n| unknown(n)) {
                // Removing a parameter the event does not have changes nothing, but names a
                // parameter that does not exist: refused like setting one.
                return Err(AnswerProblems::one(
                    name,
                    format!("is not a parameter of {}", self.definition.unique_name),
                ));
            }
        }
        let mut response = self.pipeline.response.clone();
        for (name, value) in reply.response {
            if value.is_null() && self.definition.response_property(&name).is_some() {
                response.remove(&name);
            } else {
                response.insert(name, value);
            }
        }
        validate_response(self.definition, &response, false).map_err(|problems| {
            AnswerProblems(
                problems
                    .into_iter()
                    .map(|p| ParamProblem {
                        parameter: format!("response.{}", p.parameter),
                        problem: p.problem,
                    })
                    .collect(),
            )
        })?;
        let mut shared = self.pipeline.shared_variables.clone();
        for (name, value) in reply.shared_variables {
            if name.is_empty() {
                return Err(AnswerProblems::one(
                    "shared_variables",
                    "a shared variable needs a name",
                ));
            }
            if value.is_null() {
                shared.remove(&name);
            } else {
                shared.insert(name, value);
            }
        }
        let size = Value::Object(shared.clone()).to_string().len();
        if size > SHARED_VARIABLES_LIMIT {
            return Err(AnswerProblems::one(
                "shared_variables",
                format!(
                    "the shared variables would take {size} bytes as JSON, over the limit of {SHARED_VARIABLES_LIMIT}"
                ),
            ));
        }
        self.pipeline.shared_variables = shared;
        self.params = params;
        self.pipeline.changes.extend(changes);
        self.pipeline.response = response;
        Ok(reply.other.into_iter().map(|(k, _)| k).collect())
    }

    /// The required response properties no step set; empty when the response is complete.
    pub fn missing_response(&self) -> Vec<ParamProblem> {
        validate_response(self.definition, &self.pipeline.response, true)
            .err()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load_texts;
    use serde_json::json;

    const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
name = "Sales"
solution = "contoso"
events = ["contoso_PriceQuote"]

[[events]]
unique_name = "contoso_PriceQuote"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [
  { name = "Currency", type = "String", required = true, max_length = 3 },
  { name = "Total", type = "Money", required = true },
  { name = "Note", type = "String" },
]
response_properties = [
  { name = "QuoteId", type = "Guid", required = true },
  { name = "Discount", type = "Decimal" },
]
"#;

    fn definition() -> EventDefinition {
        let catalog =
            load_texts(&[("c.toml".into(), CATALOG.to_owned())]).expect("the catalog loads");
        catalog
            .cataloged("contoso_PriceQuote")
            .expect("cataloged")
            .clone()
    }

    fn params() -> Map<String, Value> {
        json!({"Currency": "usd", "Total": 10.5})
            .as_object()
            .unwrap()
            .clone()
    }

    fn apply(
        run: &mut Run<'_>,
        stage: Stage,
        answer: Value,
    ) -> Result<Vec<String>, AnswerProblems> {
        run.apply("step", stage, answer.to_string().as_bytes())
    }

    #[test]
    fn a_step_changes_parameters_and_each_change_is_recorded() {
        let def = definition();
        let mut run = Run::new(&def, params());
        apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Currency": "EUR", "Total": 9.75, "Note": "converted"}}),
        )
        .unwrap();
        assert_eq!(run.params["Currency"], "EUR");
        assert_eq!(run.params["Note"], "converted");
        let changed: Vec<_> = run
            .pipeline
            .changes
            .iter()
            .map(|c| c.parameter.as_str())
            .collect();
        assert_eq!(
            changed,
            ["Currency", "Total", "Note"],
            "in the answer's order"
        );
        assert_eq!(run.pipeline.changes[0].from, Some(json!("usd")));
        assert_eq!(run.pipeline.changes[2].from, None);
        // Removing with null is a change too; setting the same value is none.
        apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Note": null, "Currency": "EUR"}}),
        )
        .unwrap();
        assert!(!run.params.contains_key("Note"));
        assert_eq!(run.pipeline.changes.len(), 4);
        assert_eq!(run.pipeline.changes[3].to, None);
    }

    #[test]
    fn a_wrong_type_names_the_parameter_and_changes_nothing() {
        let def = definition();
        let mut run = Run::new(&def, params());
        let problems = apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Total": "ten", "Currency": "EUR"}}),
        )
        .unwrap_err();
        assert_eq!(problems.0.len(), 1);
        assert_eq!(problems.0[0].parameter, "Total");
        assert_eq!(
            run.params,
            params(),
            "nothing of a refused answer is applied"
        );
        assert!(run.pipeline.is_empty());
        let removed = apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Total": null}}),
        )
        .unwrap_err();
        assert_eq!(removed.0[0].parameter, "Total");
        assert!(removed.0[0].problem.contains("required"));
        let unknown = apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Colour": 1}}),
        )
        .unwrap_err();
        assert_eq!(unknown.0[0].parameter, "Colour");
    }

    #[test]
    fn response_properties_are_typed_and_required_ones_must_be_set() {
        let def = definition();
        let mut run = Run::new(&def, params());
        assert_eq!(run.missing_response()[0].parameter, "QuoteId");
        let wrong = apply(
            &mut run,
            Stage::PostOperation,
            json!({"response": {"QuoteId": 7}}),
        )
        .unwrap_err();
        assert_eq!(wrong.0[0].parameter, "response.QuoteId");
        let unknown = apply(
            &mut run,
            Stage::PreOperation,
            json!({"response": {"Price": 1}}),
        )
        .unwrap_err();
        assert_eq!(unknown.0[0].parameter, "response.Price");
        apply(
            &mut run,
            Stage::PostOperation,
            json!({"response": {"QuoteId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Discount": 0.1}}),
        )
        .unwrap();
        assert!(run.missing_response().is_empty());
        assert_eq!(run.pipeline.response["Discount"], 0.1);
    }

    #[test]
    fn a_post_operation_step_cannot_change_parameters() {
        let def = definition();
        let mut run = Run::new(&def, params());
        let problems = apply(
            &mut run,
            Stage::PostOperation,
            json!({"parameters": {"Currency": "EUR"}}),
        )
        .unwrap_err();
        assert_eq!(problems.0[0].parameter, "parameters");
    }

    #[test]
    fn shared_variables_accumulate_and_other_answers_change_nothing() {
        let def = definition();
        let mut run = Run::new(&def, params());
        apply(
            &mut run,
            Stage::PreValidation,
            json!({"shared_variables": {"rate": 0.92, "x": 1}}),
        )
        .unwrap();
        apply(
            &mut run,
            Stage::PreOperation,
            json!({"shared_variables": {"x": null, "y": "b"}}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(run.pipeline.shared_variables.clone()),
            json!({"rate": 0.92, "y": "b"})
        );
        let ignored = apply(&mut run, Stage::PreOperation, json!({"status": "ok"})).unwrap();
        assert_eq!(ignored, ["status"]);
        apply(&mut run, Stage::PreOperation, json!("ok")).unwrap();
        assert_eq!(run.params, params());
        assert!(run.apply("s", Stage::PreOperation, b"{not json").is_err());
        apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": null, "response": null}),
        )
        .unwrap();
        let big = apply(
            &mut run,
            Stage::PreOperation,
            json!({"shared_variables": {"a": 1, "blob": "x".repeat(SHARED_VARIABLES_LIMIT)}}),
        )
        .unwrap_err();
        assert_eq!(big.0[0].parameter, "shared_variables");
        assert!(
            !run.pipeline.shared_variables.contains_key("a"),
            "nothing of a refused answer is applied"
        );
        let ghost = apply(
            &mut run,
            Stage::PreOperation,
            json!({"parameters": {"Colour": null}}),
        )
        .unwrap_err();
        assert_eq!(ghost.0[0].parameter, "Colour");
        assert!(apply(&mut run, Stage::PreOperation, json!({"parameters": [1]})).is_err());
    }
}
