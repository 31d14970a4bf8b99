// Dragino LDDS75: LoRaWAN ultrasonic distance sensor (280-7500 mm), fitted
// under the lid of a waste container to measure its filling.
//
// Output field names are those of Dragino's own decoder (Bat, Distance…), so
// a mapping written against a network server's decoded `object` works the
// same with Socle's decoding.
//
// fPort 2, periodic uplink, 8 bytes, big-endian:
//   0-1  battery: 14 low bits in mV (the 2 high bits are flags) -> Bat (V)
//   2-3  distance from the sensor to the surface, mm          -> Distance (mm)
//   4    1 when the uplink was sent on an interrupt           -> Interrupt_flag
//   5-6  DS18B20 probe temperature, signed, 0.1 °C            -> TempC_DS18B20 ("21.50", a string as Dragino sends it)
//   7    1 when the ultrasonic sensor is detected             -> Sensor_flag
//   Distance 0 means no sensor; under 280 mm is the blind zone: both are left
//   out with a warning rather than reported as a level.
//
// fPort 5, device status, 7 bytes:
//   0    sensor model (0x01 = LDDS75)
//   1-2  firmware version, BCD-like: 0x0114 -> "1.1.4"
//   3    frequency band (1 EU868, 2 US915, 3 IN865, 4 AU915, 5 KZ865, 6 RU864, 7 AS923)
//   4    sub-band (0 when not applicable)
//   5-6  battery, mV                                           -> Bat (V)

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function s16(b, i) {
  var v = u16(b, i);
  return v & 0x8000 ? v - 0x10000 : v;
}

var BANDS = ["", "EU868", "US915", "IN865", "AU915", "KZ865", "RU864", "AS923"];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort === 2) {
    if (b.length < 8) {
      return { errors: ["payload of " + b.length + " bytes, expected 8 on fPort 2"] };
    }
    var data = {
      Bat: (u16(b, 0) & 0x3fff) / 1000,
      Interrupt_flag: b[4],
      TempC_DS18B20: (s16(b, 5) / 10).toFixed(2),
      Sensor_flag: b[7],
    };
    var warnings = [];
    var distance = u16(b, 2);
    if (distance === 0) {
      warnings.push("no ultrasonic sensor reading (distance 0)");
    } else if (distance < 280) {
      warnings.push("distance " + distance + " mm is in the sensor's 280 mm blind zone");
    } else {
      data.Distance = distance;
    }
    return { data: data, warnings: warnings };
  }
  if (input.fPort === 5) {
    if (b.length < 7) {
      return { errors: ["payload of " + b.length + " bytes, expected 7 on fPort 5"] };
    }
    var fw = u16(b, 1);
    return {
      data: {
        SENSOR_MODEL: b[0] === 1 ? "LDDS75" : "unknown (" + b[0] + ")",
        FIRMWARE_VERSION: ((fw >> 8) & 0x0f) + "." + ((fw >> 4) & 0x0f) + "." + (fw & 0x0f),
        FREQUENCY_BAND: BANDS[b[3]] || "unknown (" + b[3] + ")",
        SUB_BAND: b[4],
        Bat: u16(b, 5) / 1000,
      },
    };
  }
  return { errors: ["unsupported fPort " + input.fPort] };
}
