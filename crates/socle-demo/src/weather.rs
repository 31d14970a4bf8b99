//! The sky over the territory: daylight (which drives street lighting) and
//! the outdoor temperature (which drives heating, gas and indoor comfort).
//! One weather for the three communes: they are a few kilometres apart.

use std::f64::consts::TAU;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};

use serde_json::json;

use crate::calendar::day_of_year;
use crate::communes::Commune;
use crate::noise::{smooth, Rng};
use crate::series::{Cadence, Model};
use crate::territory::{set, text, Builder};

const WEATHER_SEED: u64 = 0x5EA5_0A11_7E3F_0001;

/// Sunrise and sunset in UTC for a date at a position, with the usual
/// simplified solar formulas (declination, equation of time, −0.833° for
/// refraction and the solar disc). A minute of error is irrelevant here: the
/// lighting cabinets' photocells are less precise than that.
pub(crate) fn sun_times(date: NaiveDate, lat: f64, lon: f64) -> (DateTime<Utc>, DateTime<Utc>) {
    let n = f64::from(date.ordinal());
    let decl = 23.44f64.to_radians() * (TAU * (284.0 + n) / 365.0).sin();
    let phi = lat.to_radians();
    let cos_h = ((-0.833f64).to_radians().sin() - phi.sin() * decl.sin()) / (phi.cos() * decl.cos());
    let half_day_deg = cos_h.clamp(-1.0, 1.0).acos().to_degrees();
    let b = TAU * (n - 81.0) / 364.0;
    let equation_of_time = 9.87 * (2.0 * b).sin() - 7.53 * b.cos() - 1.5 * b.sin();
    let noon_min = 720.0 - 4.0 * lon - equation_of_time;
    let midnight = Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN));
    let at = |minutes: f64| midnight + Duration::seconds((minutes * 60.0).round() as i64);
    (at(noon_min - 4.0 * half_day_deg), at(noon_min + 4.0 * half_day_deg))
}

/// Outdoor air temperature (°C) in the valley: a seasonal wave (coldest
/// around 20 January), a daily wave (coldest before dawn, warmest mid
/// afternoon, wider in summer) and slow "weather fronts" lasting days.
/// `offset` shifts it for altitude.
pub(crate) fn outdoor_temperature(t: DateTime<Utc>, offset: f64) -> f64 {
    let season = (TAU * (day_of_year(t) - 20.0) / 365.25).cos();
    let seasonal = 12.0 - 7.5 * season;
    let solar_hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
    let amplitude = 4.0 - 1.5 * season;
    let daily = amplitude * (TAU * (solar_hour - 14.0) / 24.0).cos();
    let hours = t.timestamp() as f64 / 3600.0;
    let fronts =
        6.0 * (smooth(WEATHER_SEED, hours / 72.0) - 0.5) + 4.0 * (smooth(WEATHER_SEED ^ 1, hours / 170.0) - 0.5);
    seasonal + daily + fronts + offset
}

/// The weather station of the valley (Saint-Aubin's, at the town's
/// altitude): its hourly outdoor temperature is what the buildings'
/// dashboard corrects energy use with (heating degree days).
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    if c.slug != "saint-aubin" {
        return;
    }
    let mut rng = Rng::for_name(b.seed, &format!("{}:station-meteo", c.slug));
    let at = c.scatter(&mut rng, 0.3);
    let mut e = b.entity("WeatherObserved", c, "station-meteo", "Station météo du Val de Lémance", at);
    set(&mut e, "description", text(json!("Température extérieure sous abri, mesurée toutes les heures")));
    b.series(&e, "temperature", Some("CEL"), Cadence::Hourly, Model::OutdoorTemperature(0.0));
    b.add(e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::TZ;

    #[test]
    fn daylight_is_plausible_for_central_france() {
        let d = NaiveDate::from_ymd_opt(2026, 6, 21).expect("valid date");
        let (rise, set) = sun_times(d, 46.46, 0.55);
        assert_eq!(set.with_timezone(&TZ).hour(), 21);
        assert!((15.5..16.2).contains(&((set - rise).num_minutes() as f64 / 60.0)));
        let d = NaiveDate::from_ymd_opt(2026, 12, 21).expect("valid date");
        let (rise, set) = sun_times(d, 46.46, 0.55);
        assert_eq!(rise.with_timezone(&TZ).hour(), 8);
        assert!((8.3..8.7).contains(&((set - rise).num_minutes() as f64 / 60.0)));
    }

    #[test]
    fn temperatures_are_plausible() {
        let jan = Utc.with_ymd_and_hms(2026, 1, 20, 5, 0, 0).unwrap();
        let jul = Utc.with_ymd_and_hms(2026, 7, 20, 13, 0, 0).unwrap();
        assert!((-8.0..12.0).contains(&outdoor_temperature(jan, 0.0)));
        assert!((18.0..36.0).contains(&outdoor_temperature(jul, 0.0)));
    }
}
