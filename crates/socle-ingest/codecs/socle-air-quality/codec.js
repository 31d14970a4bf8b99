// Socle reference layout: outdoor air-quality micro-sensor (electrochemical
// NO2 and O3 cells, optical particle counter), for pollution peaks and heat
// islands.
//
// fPort 1, periodic uplink (mean over the period), 11 bytes, big-endian:
//   0-1  NO2,   0.1 ug/m3 (0xFFFF = not available)  -> no2  (ug/m3)
//   2-3  PM10,  0.1 ug/m3 (0xFFFF = not available)  -> pm10 (ug/m3)
//   4-5  PM2.5, 0.1 ug/m3 (0xFFFF = not available)  -> pm25 (ug/m3)
//   6-7  O3,    0.1 ug/m3 (0xFFFF = not available)  -> o3   (ug/m3)
//   8-9  air temperature, signed, 0.1 degC          -> temperature (degC)
//   10   relative humidity, % (0-100)               -> humidity (%)
// "Not available" (cell warming up, counter fan stopped) leaves the
// pollutant out with a warning.

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function s16(b, i) {
  var v = u16(b, i);
  return v & 0x8000 ? v - 0x10000 : v;
}

var POLLUTANTS = [
  ["no2", "NO2"],
  ["pm10", "PM10"],
  ["pm25", "PM2.5"],
  ["o3", "O3"],
];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length < 11) {
    return { errors: ["payload of " + b.length + " bytes, expected 11"] };
  }
  if (b[10] > 100) {
    return { errors: ["humidity " + b[10] + " % is not a percentage"] };
  }
  var data = {};
  var warnings = [];
  for (var k = 0; k < POLLUTANTS.length; k++) {
    var raw = u16(b, 2 * k);
    if (raw === 0xffff) {
      warnings.push(POLLUTANTS[k][1] + " not available");
    } else {
      data[POLLUTANTS[k][0]] = raw / 10;
    }
  }
  data.temperature = s16(b, 8) / 10;
  data.humidity = b[10];
  return { data: data, warnings: warnings };
}
