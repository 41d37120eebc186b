//! The Dataverse-compatible invocation route: `POST /api/data/v9.2/{unique_name}`, as a
//! point-of-sale or ERP written against Dataverse calls a Custom API. Same validation, steps
//! and storage as Herald's own route; success is `204 No Content`, or for an event with
//! response properties `200` with the Custom API's response (`@odata.context` and the
//! properties; `204` when the caller prefers `return=minimal`). Errors come in Dataverse's
//! OData shape `{"error": {"code": "0x…", "message": "…"}}` with the status Dataverse uses.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::QueryParams;
use super::events::DEPTH_HEADER;
use super::read_json;
use super::{AdminRefusals, ApiError, AppState, ErrorBody};
use crate::ingest::{depth_after, IngestError, Submission};

/// Dataverse's error codes for the mistakes Herald can report (from Dataverse's web service
/// error code list).
mod code {
    /// "Resource not found for the segment '…'": unknown action, or an inactive custom process action.
    pub const RESOURCE_NOT_FOUND: &str = "0x8006088a";
    /// InvalidArgument: a parameter is missing or wrong.
    pub const INVALID_ARGUMENT: &str = "0x80040203";
    /// "Error identified in Payload provided by the user": the body is not what was expected.
    pub const PAYLOAD: &str = "0x80048d19";
    /// AccessTokenExpired: "The requested resource requires authentication."
    pub const AUTHENTICATION: &str = "0x8005F101";
    /// PrivilegeDenied.
    pub const PRIVILEGE_DENIED: &str = "0x80040220";
    /// DuplicateRecord (an idempotency key reused with another request).
    pub const DUPLICATE: &str = "0x80040237";
    /// ISVAborted: a synchronous step (plug-in or webhook) cancelled the operation.
    pub const PLUGIN_ABORTED: &str = "0x80040265";
    /// "Number of requests exceeded the limit" (Dataverse's service protection): too many
    /// wrong API keys from this address.
    pub const THROTTLED: &str = "0x80072322";
    /// Unexpected (the store is unavailable).
    pub const UNEXPECTED: &str = "0x80040216";
}

/// Dataverse's message when the depth limit stops a chain of operations.
const INFINITE_LOOP: &str = "This workflow job was canceled because the workflow that started it included an infinite loop. Correct the workflow logic and try again.";

/// The depth header of Dataverse-format deliveries, sent back by a receiver that raises an
/// event while it handles one (Herald's own `herald-depth` is accepted too).
const DYNAMICS_DEPTH: &str = "x-ms-dynamics-depth";

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invoke))
        .routes(routes!(system_jobs))
        .routes(routes!(system_job_by_id))
}

/// An error in Dataverse's shape.
struct DataverseError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to wait, sent as `Retry-After`.
    retry_after: Option<u64>,
}

impl IntoResponse for DataverseError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        r.headers_mut()
            .insert("odata-version", HeaderValue::from_static("4.0"));
        if let Some(wait) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
        }
        r
    }
}

impl From<ApiError> for DataverseError {
    fn from(e: ApiError) -> Self {
        let retry_after = match &e {
            ApiError::TooManyFailures(wait) => Some(wait.as_secs().max(1)),
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        };
        let (status, detail) = e.parts();
        let code = match status {
            StatusCode::NOT_FOUND => code::RESOURCE_NOT_FOUND,
            StatusCode::UNAUTHORIZED => code::AUTHENTICATION,
            StatusCode::FORBIDDEN => code::PRIVILEGE_DENIED,
            StatusCode::CONFLICT => code::DUPLICATE,
            StatusCode::BAD_REQUEST if detail.code == "invalid_parameters" => {
                code::INVALID_ARGUMENT
            }
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => code::PAYLOAD,
            StatusCode::TOO_MANY_REQUESTS => code::THROTTLED,
            _ => code::UNEXPECTED,
        };
        let message = if detail.details.is_empty() {
            detail.message
        } else {
            // Dataverse reports one message; name every offending parameter in it.
            detail
                .details
                .iter()
                .map(|d| format!("{}: {}", d.parameter, d.problem))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if status.is_server_error() {
            tracing::error!(%message, "Dataverse-compatible invocation failed");
        }
        DataverseError {
            status,
            code,
            message,
            retry_after,
        }
    }
}

/// Invokes a cataloged event as Dataverse invokes a Custom API action.
#[utoipa::path(post, path = "/api/data/v9.2/{unique_name}", tag = "dataverse", operation_id = "invoke_custom_api",
    params(
        ("unique_name" = String, Path, description = "The Custom API (event) unique name"),
        ("OData-Version" = Option<String>, Header, pattern = r"^4\.0$", description = "4.0, the only version served"),
        ("x-ms-dynamics-depth" = Option<u32>, Header, minimum = 1, maximum = 1000,
            description = "Sent back by a receiver raising an event while it handles a Dataverse-format delivery: that delivery's `x-ms-dynamics-depth` (or `herald-depth`). The event runs one deeper; past `pipeline.max_depth` it is refused"),
        ("Prefer" = Option<String>, Header, description = "`return=minimal`: answer `204` without the response properties"),
    ),
    request_body(content = Object, description = "The request parameters", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored, for an event with response properties: the Custom API's response, `@odata.context` and the properties its synchronous steps set"),
        (status = 204, description = "Stored; deliveries will follow"),
        (status = 400, body = ErrorBody, description = "Dataverse error, code 0x80040203 or 0x80048d19, or 0x80040265 when a synchronous step cancelled the event, answered with invalid values, or the chain of events is too deep"),
        (status = 401, body = ErrorBody, description = "Dataverse error 0x8005F101"),
        (status = 403, body = ErrorBody, description = "Dataverse error 0x80040220: only Herald sends its operational events"),
        (status = 404, body = ErrorBody, description = "Dataverse error 0x8006088a: unknown or inactive action (or one of a solution the API key does not use)"),
        (status = 409, body = ErrorBody, description = "Dataverse error 0x80040237: the idempotency key was used with another request"),
        (status = 502, body = ErrorBody, description = "A synchronous step could not be called, or no step set a required response property"),
        (status = 503, body = ErrorBody, description = "Dataverse error 0x80040216: the store cannot take writes now"),
    ))]
async fn invoke(
    State(state): State<AppState>,
    client: super::ClientAddr,
    Path(name): Path<String>,
    span: super::trace::RequestSpan,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let minimal = prefers_minimal(&headers);
    match run(&state, client, &name, &span, &headers, body).await {
        Ok(response) => {
            let mut r = match response {
                Some(properties) if !minimal => {
                    let mut body = Map::new();
                    body.insert(
                        "@odata.context".into(),
                        json!(format!(
                            "{}/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.{name}Response",
                            state.public_url
                        )),
                    );
                    body.extend(properties);
                    (StatusCode::OK, Json(Value::Object(body))).into_response()
                }
                Some(_) => {
                    let mut r = StatusCode::NO_CONTENT.into_response();
                    r.headers_mut().insert(
                        "preference-applied",
                        HeaderValue::from_static("return=minimal"),
                    );
                    r
                }
                None => StatusCode::NO_CONTENT.into_response(),
            };
            r.headers_mut()
                .insert("odata-version", HeaderValue::from_static("4.0"));
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Whether the caller sent `Prefer: return=minimal` (among its other preferences).
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// Invokes `name`; its response properties when it declares any.
async fn run(
    state: &AppState,
    super::ClientAddr(client): super::ClientAddr,
    name: &str,
    span: &super::trace::RequestSpan,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<Map<String, Value>>, DataverseError> {
    let auth = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = state
        .keys
        .authenticate_from(client, auth)
        .map_err(ApiError::from)?;
    if let Some(v) = headers.get("odata-version").and_then(|v| v.to_str().ok()) {
        if v.trim() != "4.0" {
            return Err(DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PAYLOAD,
                message: format!("The OData-Version '{v}' is not supported; use 4.0."),
                retry_after: None,
            });
        }
    }
    if !state
        .catalog
        .cataloged(name)
        .is_some_and(|d| caller.may_use(&d.solution))
    {
        return Err(DataverseError {
            status: StatusCode::NOT_FOUND,
            code: code::RESOURCE_NOT_FOUND,
            message: format!("Resource not found for the segment '{name}'."),
            retry_after: None,
        });
    }
    let params: Value = read_json(headers, body, state.max_body_bytes).await?;
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Read lossily: a depth header that is not text is refused, not taken as absent.
    let depth = match super::events::header(headers, DYNAMICS_DEPTH) {
        Some(d) => depth_after(DYNAMICS_DEPTH, Some(&d)),
        None => depth_after(
            DEPTH_HEADER,
            super::events::header(headers, DEPTH_HEADER).as_deref(),
        ),
    }
    .map_err(ApiError::from)?;
    let submission = Submission {
        name: name.to_owned(),
        params,
        idempotency_key: header("idempotency-key"),
        correlation_id: header("x-ms-correlation-request-id")
            .or_else(|| header("x-correlation-id")),
        depth,
        traceparent: span.traceparent(),
        images: None,
    };
    let accepted = state
        .ingestor
        .submit(&caller, submission, &span.0)
        .await
        .map_err(|e| match e {
            // As Dataverse answers when a synchronous plug-in or webhook cancels the operation.
            IngestError::Vetoed { message, .. } => DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PLUGIN_ABORTED,
                message,
                retry_after: None,
            },
            // A step that answers with wrong values fails as a plug-in that throws.
            e @ IngestError::StepAnswerInvalid { .. } => DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PLUGIN_ABORTED,
                message: e.to_string(),
                retry_after: None,
            },
            // Dataverse's infinite-loop error, with the chain it stopped.
            e @ IngestError::TooDeep { .. } => DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PLUGIN_ABORTED,
                message: format!("{INFINITE_LOOP} ({e})"),
                retry_after: None,
            },
            IngestError::Disabled(_) => DataverseError {
                status: StatusCode::NOT_FOUND,
                code: code::RESOURCE_NOT_FOUND,
                message: format!("Resource not found for the segment '{name}'."),
                retry_after: None,
            },
            other => ApiError::from(other).into(),
        })?;
    Ok(accepted.response)
}

/// Delivery states in Dataverse's system-job (`asyncoperation`) terms, so monitoring queries
/// written against Dataverse translate: `(statecode, statuscode)`.
pub fn system_job_status(status: crate::model::DeliveryStatus) -> (i64, i64) {
    use crate::model::DeliveryStatus::*;
    match status {
        Pending => (0, 10),      // Ready / Waiting
        InFlight => (2, 20),     // Locked / In Progress
        Succeeded => (3, 30),    // Completed / Succeeded
        DeadLettered => (3, 31), // Completed / Failed
        Cancelled => (3, 32),    // Completed / Canceled
        Held => (1, 10),         // Suspended / Waiting
    }
}

fn system_job(d: &crate::model::Delivery) -> Value {
    let (statecode, statuscode) = system_job_status(d.status);
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    json!({
        "asyncoperationid": d.id.uuid().to_string(),
        "name": d.id.to_string(),
        "operationtype": 1,
        "statecode": statecode,
        "statuscode": statuscode,
        "retrycount": d.attempts,
        "message": d.last_error,
        "createdon": rfc3339(d.created_at),
        "completedon": d.finished_at.and_then(rfc3339),
        "postponeuntil": (d.status == crate::model::DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)).flatten(),
        "correlationid": d.event_id.uuid().to_string(),
    })
}

/// Query options of the system-job list: `$top`, and `$filter=statuscode eq N`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    /// At most this many (default 100, at most 1000).
    #[serde(rename = "$top")]
    #[param(minimum = 1, maximum = 1000)]
    top: Option<u32>,
    /// `statuscode eq 10|20|30|31|32`.
    #[serde(rename = "$filter")]
    #[param(pattern = r"^\s*(statuscode eq (10|20|30|31|32))?\s*$")]
    filter: Option<String>,
}

/// Deliveries as Dataverse system jobs (`asyncoperations`), newest first.
#[utoipa::path(get, path = "/api/data/v9.2/asyncoperations", tag = "dataverse", operation_id = "list_system_jobs", params(JobQuery),
    responses((status = 200, description = "OData collection of system jobs"), (status = 400, body = ErrorBody), AdminRefusals))]
async fn system_jobs(
    State(state): State<AppState>,
    super::Admin(caller): super::Admin,
    QueryParams(q): QueryParams<JobQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.top.is_some_and(|n| !(1..=1000).contains(&n)) {
        return Err(ApiError::field("$top", "must be 1 to 1000"));
    }
    let status = match q.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) => {
            let code = f
                .strip_prefix("statuscode eq ")
                .filter(|n| matches!(*n, "10" | "20" | "30" | "31" | "32"))
                .and_then(|n| n.parse::<i64>().ok());
            let status = crate::model::DeliveryStatus::ALL
                .into_iter()
                .find(|s| Some(system_job_status(*s).1) == code);
            Some(status.ok_or_else(|| {
                ApiError::field(
                    "$filter",
                    "only `statuscode eq 10|20|30|31|32` is supported",
                )
            })?)
        }
    };
    let query = crate::model::DeliveryQuery {
        status,
        limit: q.top,
        ..Default::default()
    };
    let jobs: Vec<Value> = state
        .store
        .records()
        .deliveries(&caller.scope(), &query)
        .await?
        .iter()
        .map(system_job)
        .collect();
    Ok(Json(
        json!({"@odata.context": format!("{}/api/data/v9.2/$metadata#asyncoperations", state.public_url), "value": jobs}),
    ))
}

/// One delivery as a Dataverse system job: `GET /api/data/v9.2/asyncoperations(<id>)`.
/// (The router takes one parameter per path segment, so the segment is parsed here.)
#[utoipa::path(get, path = "/api/data/v9.2/{unique_name}", tag = "dataverse", operation_id = "get_system_job",
    params(("unique_name" = String, Path, pattern = r"^asyncoperations\([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\)$",
        description = "`asyncoperations(<guid>)`")),
    responses((status = 200, description = "A system job"), (status = 404, body = ErrorBody), AdminRefusals))]
async fn system_job_by_id(
    State(state): State<AppState>,
    super::Admin(caller): super::Admin,
    Path(segment): Path<String>,
) -> Response {
    let Some(id) = segment
        .strip_prefix("asyncoperations(")
        .and_then(|s| s.strip_suffix(')'))
        .map(str::to_owned)
    else {
        return DataverseError {
            status: StatusCode::NOT_FOUND,
            code: code::RESOURCE_NOT_FOUND,
            message: format!("Resource not found for the segment '{segment}'."),
            retry_after: None,
        }
        .into_response();
    };
    let not_found = || DataverseError {
        status: StatusCode::NOT_FOUND,
        code: "0x80040217",
        message: format!("asyncoperation With Id = {id} Does Not Exist"),
        retry_after: None,
    };
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return not_found().into_response();
    };
    match state
        .store
        .records()
        .delivery(&caller.scope(), crate::model::DeliveryId::from_uuid(uuid))
        .await
    {
        Ok(Some((d, _))) => Json(system_job(&d)).into_response(),
        Ok(None) => not_found().into_response(),
        Err(e) => DataverseError::from(ApiError::from(e)).into_response(),
    }
}
