//! Errors as RFC 9457 problem details, translated. The `code` is stable for
//! programs; `title` and `detail` are for people. Internal causes go to the
//! log with the request id, never into the response body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use socle_domain::DomainError;
use socle_storage::StoreError;
use utoipa::ToSchema;

use crate::i18n::Lang;

/// Body of every error response (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip)]
    lang: Option<Lang>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, lang: Lang, title: (&str, &str), detail: String) -> Self {
        Self {
            kind: format!("urn:socle:problem:{code}"),
            title: lang.pick(title.0, title.1),
            status: status.as_u16(),
            detail,
            code,
            instance: None,
            lang: Some(lang),
        }
    }

    pub fn with_instance(mut self, path: &str) -> Self {
        self.instance = Some(path.to_owned());
        self
    }

    pub fn bad_request(lang: Lang, code: &'static str, fr: String, en: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, lang, ("Requête invalide", "Bad request"), lang.pick(fr, en))
    }

    pub fn not_found(lang: Lang, code: &'static str, fr: String, en: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, lang, ("Introuvable", "Not found"), lang.pick(fr, en))
    }

    pub fn internal(lang: Lang) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            lang,
            ("Erreur interne", "Internal error"),
            lang.pick(
                "Une erreur interne est survenue ; elle a été journalisée. Réessayez plus tard.",
                "An internal error occurred and was logged. Please try again later.",
            ),
        )
    }

    pub fn unavailable(lang: Lang) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-unavailable",
            lang,
            ("Service indisponible", "Service unavailable"),
            lang.pick("Le stockage ne répond pas.", "Storage does not answer."),
        )
    }

    /// Turns a domain parsing error on a named parameter into a 400.
    pub fn invalid_parameter(lang: Lang, name: &str, err: &DomainError) -> Self {
        let (fr, en) = describe_domain_error(err);
        Self::bad_request(
            lang,
            "invalid-parameter",
            format!("Le paramètre « {name} » est invalide : {fr}."),
            format!("Parameter '{name}' is invalid: {en}."),
        )
    }

    pub fn from_store(lang: Lang, err: StoreError) -> Self {
        match &err {
            StoreError::UnknownEntity(id) => Self::not_found(
                lang,
                "unknown-entity",
                format!("Aucun équipement visible ne porte l'identifiant {id}."),
                format!("No visible entity has the id {id}."),
            ),
            StoreError::UnknownSeries { entity, attribute } => Self::not_found(
                lang,
                "unknown-series",
                format!("L'équipement {entity} n'a pas d'historique pour « {attribute} »."),
                format!("Entity {entity} has no history for '{attribute}'."),
            ),
            StoreError::NotNumeric { attribute, .. } => Self::bad_request(
                lang,
                "not-numeric",
                format!("« {attribute} » contient du texte : seul le pas « raw » est possible."),
                format!("'{attribute}' holds text: only step 'raw' is possible."),
            ),
            StoreError::UnknownOrganisation(id) => Self::not_found(
                lang,
                "unknown-organisation",
                format!("Aucune organisation visible ne porte l'identifiant {id}."),
                format!("No visible organisation has the id {id}."),
            ),
            _ => {
                // The chain goes to the log; the client gets a generic message.
                tracing::error!(error = %err, "storage failure");
                if matches!(err, StoreError::PostgresPool(_) | StoreError::SqlitePool(_)) {
                    Self::unavailable(lang)
                } else {
                    Self::internal(lang)
                }
            }
        }
    }
}

fn describe_domain_error(err: &DomainError) -> (String, String) {
    match err {
        DomainError::EntityId(v) => (
            format!("{v:?} n'est pas un identifiant urn:ngsi-ld:<Type>:<identifiant>"),
            format!("{v:?} is not an urn:ngsi-ld:<Type>:<id> identifier"),
        ),
        DomainError::OrganisationId(v) => (
            format!("{v:?} n'est pas un identifiant d'organisation (a-z, 0-9, -)"),
            format!("{v:?} is not an organisation id (a-z, 0-9, -)"),
        ),
        DomainError::EntityType(v) => {
            (format!("{v:?} n'est pas un type d'entité"), format!("{v:?} is not an entity type"))
        }
        DomainError::AttributeName(v) => {
            (format!("{v:?} n'est pas un nom d'attribut"), format!("{v:?} is not an attribute name"))
        }
        DomainError::BBox(why) => (
            format!("attendu minLon,minLat,maxLon,maxLat en WGS 84 ({why})"),
            format!("expected minLon,minLat,maxLon,maxLat in WGS 84 ({why})"),
        ),
        DomainError::TimeRange(_) => {
            ("le début doit précéder la fin".to_owned(), "the start must be before the end".to_owned())
        }
        DomainError::UnknownVariant { what, value } => (
            format!("{value:?} n'est pas une valeur possible de {what}"),
            format!("{value:?} is not a possible {what}"),
        ),
        other => (other.to_string(), other.to_string()),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let lang = self.lang.unwrap_or(Lang::Fr);
        let mut res = (status, axum::Json(&self)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.code()));
        res
    }
}

pub type ApiResult<T> = Result<T, Problem>;
