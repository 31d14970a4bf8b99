//! The story the demo tells, placed relative to the anchor (the moment the
//! demo was first created) so that it always happened "recently" and a
//! restart replays the same history.

use chrono::{DateTime, Duration, Utc};
use socle_domain::EntityId;

use crate::calendar::{at_local, Local};

/// Local ids of the entities the story is about.
pub(crate) const LEAK_SECTOR: &str = "secteur-les-aubiers";
pub(crate) const RENOVATED_SCHOOL: &str = "ecole-jules-ferry";
/// Cabinet numbers (1-based) in Saint-Aubin.
pub(crate) const EXTINCTION_CABINET: usize = 12;
pub(crate) const ANOMALY_CABINET: usize = 7;

/// Energy saved by the renovated school (insulation, boiler regulation, LED).
pub const RENOVATION_SAVINGS: f64 = 0.18;

/// When and where the notable events of the demo happen. All instants are
/// derived from the anchor, so they are stable across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub anchor: DateTime<Utc>,
    /// A pipe bursts in this water sector at this instant, six nights before
    /// the anchor, and is not repaired: the night flow stays high.
    pub leak_sector: EntityId,
    pub leak_start: DateTime<Utc>,
    /// The Lémance floods: the downstream gauge (Saint-Aubin) peaks above
    /// its alert level at this instant, 20 days before the anchor; the
    /// upstream gauges peak 4 and 9 hours earlier.
    pub flood_peak: DateTime<Utc>,
    /// A particulate pollution episode (stagnant air), 12 to 9 days before the anchor.
    pub pollution_start: DateTime<Utc>,
    pub pollution_end: DateTime<Utc>,
    /// A lighting cabinet stays on in daytime: its clock fails in the night
    /// 3 days before the anchor (no switch-off at dawn); the contractor
    /// fixes it at 11:00 two days after the anchor.
    pub lighting_anomaly_cabinet: EntityId,
    pub lighting_anomaly_start: DateTime<Utc>,
    pub lighting_anomaly_end: DateTime<Utc>,
    /// The cabinet that switches off from 23:00 to 05:00 (energy sobriety).
    pub extinction_cabinet: EntityId,
    /// A few containers are left out of the collection rounds over these
    /// days (16 days before the anchor to the day after), so they are full
    /// at the anchor.
    pub missed_collections_start: DateTime<Utc>,
    pub missed_collections_end: DateTime<Utc>,
    /// The renovated school uses [`RENOVATION_SAVINGS`] less gas and
    /// electricity from this instant, 75 days before the anchor.
    pub renovated_building: EntityId,
    pub renovation_date: DateTime<Utc>,
}

impl Scenario {
    pub(crate) fn new(anchor: DateTime<Utc>) -> Self {
        let day = Local::of(anchor).date;
        let days_before = |n: i64| day - Duration::days(n);
        let id = |s: String| EntityId::parse(&s).expect("scenario entity ids are built from valid constants");
        Self {
            anchor,
            leak_sector: id(format!("urn:ngsi-ld:WaterConsumptionObserved:saint-aubin:{LEAK_SECTOR}")),
            leak_start: at_local(days_before(6), 2.0 + 40.0 / 60.0),
            flood_peak: at_local(days_before(20), 18.0),
            pollution_start: at_local(days_before(12), 0.0),
            pollution_end: at_local(days_before(9), 0.0),
            lighting_anomaly_cabinet: id(format!(
                "urn:ngsi-ld:StreetlightControlCabinet:saint-aubin:{}",
                crate::lighting::cabinet_local_id(ANOMALY_CABINET)
            )),
            // Midnight falls inside the night, so the first visible effect is
            // the missing switch-off at dawn.
            lighting_anomaly_start: at_local(days_before(3), 0.0),
            lighting_anomaly_end: at_local(day + Duration::days(2), 11.0),
            extinction_cabinet: id(format!(
                "urn:ngsi-ld:StreetlightControlCabinet:saint-aubin:{}",
                crate::lighting::cabinet_local_id(EXTINCTION_CABINET)
            )),
            missed_collections_start: at_local(days_before(16), 0.0),
            missed_collections_end: at_local(day + Duration::days(1), 0.0),
            renovated_building: id(format!("urn:ngsi-ld:Building:saint-aubin:{RENOVATED_SCHOOL}")),
            renovation_date: at_local(days_before(75), 0.0),
        }
    }
}
