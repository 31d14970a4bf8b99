// Socle reference layout: indoor ambience sensor (classrooms, offices,
// halls): temperature and humidity, optional CO2.
//
// fPort 1, periodic uplink, 5 bytes (7 with the CO2 option), big-endian:
//   0-1  temperature, signed, 0.01 degC (0x7FFF = sensor error) -> temperature (degC)
//   2    relative humidity, 0.5 % steps (0-200; 255 = error)   -> humidity (%)
//   3-4  battery, mV                                           -> battery (V)
//   5-6  CO2, ppm (optional; 0xFFFF = warming up)              -> co2 (ppm)
// A reading flagged as an error is left out with a warning, so the other
// values of the same uplink are kept.

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function s16(b, i) {
  var v = u16(b, i);
  return v & 0x8000 ? v - 0x10000 : v;
}

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length !== 5 && b.length !== 7) {
    return { errors: ["payload of " + b.length + " bytes, expected 5 or 7"] };
  }
  var data = { battery: u16(b, 3) / 1000 };
  var warnings = [];
  var t = s16(b, 0);
  if (t === 0x7fff) {
    warnings.push("temperature sensor error");
  } else {
    data.temperature = t / 100;
  }
  if (b[2] > 200) {
    warnings.push("humidity sensor error");
  } else {
    data.humidity = b[2] / 2;
  }
  if (b.length === 7) {
    var co2 = u16(b, 5);
    if (co2 === 0xffff) {
      warnings.push("CO2 sensor warming up");
    } else {
      data.co2 = co2;
    }
  }
  return { data: data, warnings: warnings };
}
