//! Administration reads: users and the audit trail of the organisations the
//! caller administers.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{AuditEntryDto, AuditLog, UserList};
use crate::i18n::Lang;
use crate::problem::{ApiResult, Problem};
use crate::query::ApiQuery;
use crate::routes::entities::parse_number;
use crate::{AppState, Caller};

/// Users of the organisations the caller administers (personal data: each read is audited).
#[utoipa::path(get, path = "/api/v1/users", tag = "administration", security(("bearer" = [])),
    responses((status = 200, body = UserList),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn users(State(state): State<AppState>, caller: Caller, lang: Lang) -> ApiResult<Json<UserList>> {
    let users = state.scoped(&caller).users().await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(UserList { items: users.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1 to 1000, default 100.
    pub limit: Option<String>,
}

/// The audit trail of the organisations the caller administers, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "administration", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = AuditLog),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditLog>> {
    let limit = parse_number(lang, "limit", p.limit.as_deref(), 100, 1, 1000)?;
    let entries = state.scoped(&caller).audit_log(limit).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(AuditLog {
        items: entries
            .into_iter()
            .map(|e| AuditEntryDto {
                at: e.at,
                actor: e.actor,
                organisation: e.organisation.map(|o| o.to_string()),
                action: e.action,
                object: e.object,
                detail: e.detail,
            })
            .collect(),
    }))
}
