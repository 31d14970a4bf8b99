//! The reproducible workload: indoor environment sensors (temperature,
//! relative humidity, CO₂) reporting every 15 minutes, as a town hall's
//! buildings would have them.
//!
//! Every value is a pure function of (seed, device, reading index): any
//! slice of the year can be produced in any order, by several writers at
//! once, without keeping the workload in memory, and the same seed gives
//! the same bytes to every system. Values are what such sensors send —
//! temperature to 0.1 °C following days and seasons, humidity in whole
//! percent, CO₂ in steps of 5 ppm rising with occupancy — so they compress
//! the way real data does.

use chrono::{DateTime, TimeZone, Utc};

/// Seconds between two readings of a device.
pub const STEP_SECS: i64 = 900;
/// Readings of one device in the year of history.
pub const READINGS_PER_YEAR: u64 = 365 * 24 * 4;
/// Values (points) per reading: temperature, relative humidity, CO₂.
pub const VALUES_PER_READING: u64 = 3;
/// The entity type every device feeds.
pub const ENTITY_TYPE: &str = "IndoorEnvironmentObserved";
/// The InfluxDB measurement holding the same data.
pub const MEASUREMENT: &str = "env";
/// Centre of the territory (a département-sized square around it).
const CENTRE: (f64, f64) = (0.70, 45.20);
/// Half the side of that square, in degrees.
const HALF_SIDE: f64 = 0.25;

/// The start of the year of history (UTC), 2025-01-01.
pub fn year_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap_or_default()
}

/// The instant of reading `index` (0 = the first reading of the year).
pub fn instant(index: u64) -> DateTime<Utc> {
    year_start() + chrono::Duration::seconds(STEP_SECS * index as i64)
}

/// SplitMix64: a counter-based generator, so a value depends only on its
/// coordinates (random access), not on how many values came before.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1) for these coordinates.
fn unit(seed: u64, a: u64, b: u64, salt: u64) -> f64 {
    (mix(seed ^ mix(a ^ mix(b ^ mix(salt)))) >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// °C, one decimal.
    pub temperature: f64,
    /// %, whole.
    pub humidity: i64,
    /// ppm, multiple of 5.
    pub co2: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub seed: u64,
    /// Devices in the territory.
    pub devices: u64,
}

impl Workload {
    pub fn reading(&self, device: u64, index: u64) -> Reading {
        let s = self.seed;
        let base = 18.0 + 4.0 * unit(s, device, 0, 1);
        let day_fraction = (index % 96) as f64 / 96.0;
        let year_fraction = (index % READINGS_PER_YEAR) as f64 / READINGS_PER_YEAR as f64;
        let hour = (index % 96) / 4;
        let weekday = (index / 96 + 2) % 7; // 2025-01-01 was a Wednesday
        let occupied = weekday < 5 && (8..18).contains(&hour);
        let daily = -1.5 * (std::f64::consts::TAU * (day_fraction - 0.1)).cos();
        let seasonal = -3.0 * (std::f64::consts::TAU * (year_fraction - 0.05)).cos();
        let noise = unit(s, device, index, 2) - 0.5;
        let temperature = ((base + daily + seasonal * 0.5 + noise * 0.4) * 10.0).round() / 10.0;
        let humidity = (50.0 + 8.0 * (std::f64::consts::TAU * year_fraction).sin() + 4.0 * unit(s, device, index, 3))
            .round() as i64;
        let people = if occupied { 300.0 + 500.0 * unit(s, device, index / 4, 4) } else { 0.0 };
        let co2 = ((420.0 + people + 20.0 * unit(s, device, index, 5)) / 5.0).round() as i64 * 5;
        Reading { temperature, humidity, co2 }
    }

    /// Longitude and latitude of a device, spread over the territory.
    pub fn location(&self, device: u64) -> (f64, f64) {
        let lon = CENTRE.0 - HALF_SIDE + 2.0 * HALF_SIDE * unit(self.seed, device, 0, 6);
        let lat = CENTRE.1 - HALF_SIDE + 2.0 * HALF_SIDE * unit(self.seed, device, 0, 7);
        ((lon * 1e5).round() / 1e5, (lat * 1e5).round() / 1e5)
    }

    /// A box around the centre holding about `share` of the devices.
    pub fn bbox(&self, share: f64) -> [f64; 4] {
        let half = HALF_SIDE * share.sqrt();
        [CENTRE.0 - half, CENTRE.1 - half, CENTRE.0 + half, CENTRE.1 + half]
    }

    /// The devices whose location lies in `bbox` (what a technician's
    /// device register, a spreadsheet, would give for the peer).
    pub fn devices_in(&self, bbox: [f64; 4]) -> Vec<u64> {
        (0..self.devices)
            .filter(|&d| {
                let (lon, lat) = self.location(d);
                lon >= bbox[0] && lat >= bbox[1] && lon <= bbox[2] && lat <= bbox[3]
            })
            .collect()
    }
}

pub fn dev_eui(device: u64) -> String {
    format!("b0c1e000{device:08x}")
}

pub fn device_name(device: u64) -> String {
    format!("env-{device:05}")
}

pub fn entity_id(device: u64) -> String {
    format!("urn:ngsi-ld:{ENTITY_TYPE}:bench-{device:05}")
}

/// One message of Socle's generic push format (`/ingest/generic`).
pub fn generic_message(w: &Workload, device: u64, index: u64) -> String {
    let r = w.reading(device, index);
    format!(
        r#"{{"device":"{}","observedAt":"{}","values":{{"temperature":{:.1},"humidity":{},"co2":{}}}}}"#,
        dev_eui(device),
        instant(index).format("%Y-%m-%dT%H:%M:%SZ"),
        r.temperature,
        r.humidity,
        r.co2
    )
}

/// A ChirpStack v4 uplink event as its HTTP integration posts it, with the
/// payload already decoded by the device profile's codec (`object`), and
/// the raw bytes of the `socle-th-indoor` format alongside.
pub fn chirpstack_uplink(w: &Workload, device: u64, index: u64) -> String {
    let r = w.reading(device, index);
    let t = (r.temperature * 100.0).round() as i16;
    let bytes =
        [(t >> 8) as u8, t as u8, r.humidity.clamp(0, 100) as u8 * 2, 0x0b, 0xc2, (r.co2 >> 8) as u8, r.co2 as u8];
    let data: String = base64(&bytes);
    format!(
        concat!(
            r#"{{"deduplicationId":"{dedup}","time":"{time}","#,
            r#""deviceInfo":{{"devEui":"{eui}","deviceName":"{name}","deviceProfileName":"socle-th-indoor"}},"#,
            r#""devAddr":"260b{addr:04x}","fCnt":{fcnt},"fPort":1,"data":"{data}","#,
            r#""object":{{"temperature":{temp:.1},"humidity":{hum},"co2":{co2},"battery":3.01}},"#,
            r#""rxInfo":[{{"gatewayId":"0016c001ff10a235","rssi":-97,"snr":6.5}}],"#,
            r#""txInfo":{{"frequency":868100000}}}}"#
        ),
        dedup = format!("{:08x}-0000-4000-8000-{:012x}", device, index),
        time = instant(index).format("%Y-%m-%dT%H:%M:%SZ"),
        eui = dev_eui(device),
        name = device_name(device),
        addr = device & 0xffff,
        fcnt = index,
        data = data,
        temp = r.temperature,
        hum = r.humidity,
        co2 = r.co2,
    )
}

/// The same reading as one line of InfluxDB line protocol (precision s).
pub fn line(w: &Workload, device: u64, index: u64) -> String {
    let r = w.reading(device, index);
    format!(
        "{MEASUREMENT},device={} temperature={:.1},humidity={}i,co2={}i {}\n",
        device_name(device),
        r.temperature,
        r.humidity,
        r.co2,
        instant(index).timestamp()
    )
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_formats_agree() {
        let w = Workload { seed: 7, devices: 100 };
        assert_eq!(w.reading(3, 1234), Workload { seed: 7, devices: 10 }.reading(3, 1234));
        assert_ne!(w.reading(3, 1234), Workload { seed: 8, devices: 100 }.reading(3, 1234));
        let r = w.reading(3, 1234);
        assert!((10.0..30.0).contains(&r.temperature), "{r:?}");
        assert!((30..=70).contains(&r.humidity) && r.co2 % 5 == 0 && r.co2 >= 420, "{r:?}");
        let msg: serde_json::Value = serde_json::from_str(&generic_message(&w, 3, 1234)).unwrap();
        let up: serde_json::Value = serde_json::from_str(&chirpstack_uplink(&w, 3, 1234)).unwrap();
        assert_eq!(msg["values"]["co2"], up["object"]["co2"]);
        assert_eq!(msg["observedAt"], up["time"]);
        assert!(line(&w, 3, 1234).contains(&format!("co2={}i", r.co2)));
    }

    #[test]
    fn bbox_holds_about_its_share() {
        let w = Workload { seed: 1, devices: 10_000 };
        let n = w.devices_in(w.bbox(0.01)).len();
        assert!((50..=150).contains(&n), "{n}");
    }
}
