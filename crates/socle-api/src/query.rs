//! Query-string and path extractors whose rejections are problem details.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::i18n::Lang;
use crate::problem::Problem;

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let lang = Lang::from_request_parts(parts, state).await.unwrap_or(Lang::Fr);
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Problem::bad_request(
                lang,
                "invalid-query",
                format!("Paramètres de requête invalides : {}", e.body_text()),
                format!("Invalid query parameters: {}", e.body_text()),
            )),
            Err(e) => Err(Problem::bad_request(
                lang,
                "invalid-query",
                format!("Paramètres de requête invalides : {e}"),
                format!("Invalid query parameters: {e}"),
            )),
        }
    }
}

pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let lang = Lang::from_request_parts(parts, state).await.unwrap_or(Lang::Fr);
        Path::<T>::from_request_parts(parts, state).await.map(|Path(v)| Self(v)).map_err(|e: PathRejection| {
            Problem::bad_request(
                lang,
                "invalid-path",
                format!("Adresse invalide : {}", e.body_text()),
                format!("Invalid path: {}", e.body_text()),
            )
        })
    }
}
