// Socle reference layout: radar (or ultrasonic) water-level sensor fixed
// above a river, under a bridge, for flood anticipation.
//
// The sensor measures the distance down to the water surface; the river
// level is the mounting height minus that distance, computed by the mapping
// (expression `mountingHeight - value`) because the height is a property of
// the station, not of the sensor.
//
// fPort 1, periodic uplink, 7 bytes, big-endian:
//   0-1  distance to the water surface, mm (0xFFFF = no echo)  -> distance (m)
//   2-3  sensor temperature, signed, 0.1 degC                  -> temperature (degC)
//   4    echo quality, 0-100                                   -> signalQuality (%)
//   5-6  battery, mV                                           -> battery (V)
// fPort 2, alarm uplink (sent at once when a threshold is crossed): same
// layout, and `alarm: true` is added.

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function s16(b, i) {
  var v = u16(b, i);
  return v & 0x8000 ? v - 0x10000 : v;
}

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1 && input.fPort !== 2) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length < 7) {
    return { errors: ["payload of " + b.length + " bytes, expected 7"] };
  }
  if (b[4] > 100) {
    return { errors: ["echo quality " + b[4] + " is not a percentage"] };
  }
  var data = {
    temperature: s16(b, 2) / 10,
    signalQuality: b[4],
    battery: u16(b, 5) / 1000,
  };
  var warnings = [];
  var d = u16(b, 0);
  if (d === 0xffff) {
    warnings.push("no echo: distance unknown");
  } else {
    data.distance = d / 1000;
  }
  if (input.fPort === 2) {
    data.alarm = true;
  }
  return { data: data, warnings: warnings };
}
