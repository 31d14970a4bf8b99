//! Fill level at or above a percentage: a container to collect. The alert resolves
//! when the level drops again (the truck emptied it), below `clearPercent` if given,
//! so a probe wavering around 80 % does not reopen it at each reading.

use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::rule::{check_percent, Scale};
use crate::threshold::Band;
use crate::RuleError;

fn fill_attribute() -> AttributeName {
    AttributeName::parse("fillingLevel").expect("a valid attribute name")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fill {
    /// Smart Data Models `WasteContainer.fillingLevel` by default.
    #[serde(default = "fill_attribute")]
    pub attribute: AttributeName,
    pub percent: f64,
    /// The container counts as emptied below this; defaults to `percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_percent: Option<f64>,
    /// `fillingLevel` is a ratio (0 to 1) in Smart Data Models.
    #[serde(default)]
    pub scale: Scale,
}

impl Fill {
    pub fn new(percent: f64) -> Self {
        Self { attribute: fill_attribute(), percent, clear_percent: None, scale: Scale::Ratio }
    }

    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_percent("condition.percent", self.percent)?;
        if let Some(c) = self.clear_percent {
            check_percent("condition.clearPercent", c)?;
            if c > self.percent {
                return Err(RuleError::invalid("condition.clearPercent", "must not exceed `percent`"));
            }
        }
        Ok(())
    }

    pub(crate) fn band(&self) -> Band {
        Band { above: true, inclusive: true, level: self.percent, clear: self.clear_percent.unwrap_or(self.percent) }
    }
}
