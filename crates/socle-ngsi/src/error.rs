//! The NGSI-LD error shape (ETSI GS CIM 009, 5.5.2 and 6.3.2): a problem
//! details body whose `type` is one of the URIs the standard fixes, each with
//! its HTTP status. Clients branch on the `type`, so it must be exact.

use serde::Serialize;

/// The error kinds of NGSI-LD, with a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgsiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    BadRequestData(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    OperationNotSupported(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    InternalError(String),
    #[error("{0}")]
    TooManyResults(String),
    #[error("{0}")]
    NoMultiTenantSupport(String),
    #[error("{0}")]
    NonexistentTenant(String),
    #[error("{0}")]
    LdContextNotAvailable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
}

/// The body of an NGSI-LD error response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl NgsiError {
    /// The short name of the error type, as in its URI.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::BadRequestData(_) => "BadRequestData",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::OperationNotSupported(_) => "OperationNotSupported",
            Self::ResourceNotFound(_) => "ResourceNotFound",
            Self::InternalError(_) => "InternalError",
            Self::TooManyResults(_) => "TooManyResults",
            Self::NoMultiTenantSupport(_) => "NoMultiTenantSupport",
            Self::NonexistentTenant(_) => "NonexistentTenant",
            Self::LdContextNotAvailable(_) => "LdContextNotAvailable",
            // The standard has no URI for these HTTP-level refusals; they
            // keep the same shape so that a client needs one parser.
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::PayloadTooLarge(_) => "PayloadTooLarge",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
        }
    }

    pub fn type_uri(&self) -> String {
        format!("https://uri.etsi.org/ngsi-ld/errors/{}", self.name())
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) | Self::BadRequestData(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::ResourceNotFound(_) | Self::NonexistentTenant(_) => 404,
            Self::NotAcceptable(_) => 406,
            Self::AlreadyExists(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::OperationNotSupported(_) => 422,
            Self::InternalError(_) => 500,
            Self::NoMultiTenantSupport(_) => 501,
            Self::LdContextNotAvailable(_) => 503,
            Self::TooManyResults(_) => 403,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::InvalidRequest(d)
            | Self::BadRequestData(d)
            | Self::AlreadyExists(d)
            | Self::OperationNotSupported(d)
            | Self::ResourceNotFound(d)
            | Self::InternalError(d)
            | Self::TooManyResults(d)
            | Self::NoMultiTenantSupport(d)
            | Self::NonexistentTenant(d)
            | Self::LdContextNotAvailable(d)
            | Self::UnsupportedMediaType(d)
            | Self::NotAcceptable(d)
            | Self::PayloadTooLarge(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d) => d,
        }
    }

    pub fn to_problem(&self) -> ProblemDetails {
        ProblemDetails {
            kind: self.type_uri(),
            title: self.name().to_owned(),
            status: self.status(),
            detail: self.detail().to_owned(),
        }
    }

    /// The error of a reference to an entity that is absent *or hidden*:
    /// the same words for both, so that a hidden entity cannot be told apart.
    pub fn entity_not_found(id: &str) -> Self {
        Self::ResourceNotFound(format!("Entity {id} was not found"))
    }
}

/// What an error type means, in French, for a client that asked for French
/// (`Accept-Language: fr`). NGSI-LD clients are mostly programs expecting
/// English, so `title` stays the standard's name and English is the default;
/// French readers get this sentence before the precise English detail.
pub fn french_summary(name: &str) -> Option<&'static str> {
    Some(match name {
        "InvalidRequest" => "La requête est mal formée",
        "BadRequestData" => "Les données de la requête sont invalides",
        "AlreadyExists" => "La ressource existe déjà",
        "OperationNotSupported" => "Cette opération n'est pas prise en charge",
        "ResourceNotFound" => "Ressource introuvable",
        "InternalError" => "Erreur interne du serveur ; l'incident est consigné",
        "TooManyResults" => "Trop de résultats : affinez la requête",
        "NoMultiTenantSupport" => "Ce serveur ne gère pas les locataires ainsi",
        "NonexistentTenant" => "Le locataire (NGSILD-Tenant) n'existe pas",
        "LdContextNotAvailable" => "Le @context demandé n'est pas disponible",
        "UnsupportedMediaType" => "Type de contenu non pris en charge",
        "NotAcceptable" => "Aucun format de réponse acceptable",
        "PayloadTooLarge" => "Le corps de la requête est trop volumineux",
        "Unauthorized" => "Authentification requise : jeton d'API absent, invalide ou expiré",
        "Forbidden" => "Vos droits ne permettent pas cette opération",
        _ => return None,
    })
}

pub type Result<T, E = NgsiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_statuses_follow_the_standard() {
        let cases = [
            (NgsiError::InvalidRequest(String::new()), "InvalidRequest", 400),
            (NgsiError::BadRequestData(String::new()), "BadRequestData", 400),
            (NgsiError::AlreadyExists(String::new()), "AlreadyExists", 409),
            (NgsiError::OperationNotSupported(String::new()), "OperationNotSupported", 422),
            (NgsiError::ResourceNotFound(String::new()), "ResourceNotFound", 404),
            (NgsiError::InternalError(String::new()), "InternalError", 500),
            (NgsiError::TooManyResults(String::new()), "TooManyResults", 403),
            (NgsiError::LdContextNotAvailable(String::new()), "LdContextNotAvailable", 503),
            (NgsiError::NonexistentTenant(String::new()), "NonexistentTenant", 404),
        ];
        for (e, name, status) in cases {
            assert_eq!(e.type_uri(), format!("https://uri.etsi.org/ngsi-ld/errors/{name}"));
            assert_eq!(e.status(), status, "{name}");
        }
        let p = serde_json::to_value(NgsiError::entity_not_found("urn:ngsi-ld:X:1").to_problem()).unwrap();
        assert_eq!(p["type"], "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound");
        assert_eq!(p["status"], 404);
    }
}
