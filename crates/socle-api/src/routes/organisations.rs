use axum::extract::State;
use axum::Json;
use socle_domain::OrganisationId;

use crate::dto::{OrganisationDto, OrganisationList};
use crate::i18n::Lang;
use crate::problem::{ApiResult, Problem};
use crate::query::ApiPath;
use crate::AppState;

/// Every organisation: the syndicate, its communes, partners.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations",
    responses((status = 200, body = OrganisationList)))]
pub async fn list(State(state): State<AppState>, lang: Lang) -> ApiResult<Json<OrganisationList>> {
    let orgs = state.organisations().await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(OrganisationList { total: orgs.len() as u64, items: orgs.into_iter().map(Into::into).collect() }))
}

/// One organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = String, Path, description = "Organisation id")),
    responses((status = 200, body = OrganisationDto),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrganisationDto>> {
    let parsed = OrganisationId::parse(&id).map_err(|e| Problem::invalid_parameter(lang, "id", &e))?;
    match state.organisation(&parsed).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(o) => Ok(Json(o.into())),
        None => Err(Problem::from_store(lang, socle_storage::StoreError::UnknownOrganisation(id))),
    }
}
