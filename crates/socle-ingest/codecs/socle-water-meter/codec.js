// Socle reference layout: pulse-output water meter reader (a LoRaWAN pulse
// counter on a district or building meter), for night-flow leak detection.
//
// fPort 1, periodic uplink, 9 bytes, big-endian:
//   0    alarms: bit0 leak (continuous flow), bit1 backflow, bit2 tamper
//        (magnet or cut cable), bit3 low battery; other bits reserved (0)
//   1-4  pulse counter, unsigned 32 bits, never reset      -> pulses
//   5    litres per pulse, coded: 0 = 1 L, 1 = 10 L, 2 = 100 L, 3 = 1000 L
//   6-7  mean flow over the last period, L/h               -> flow (L/h)
//   8    battery, percent (255 = unknown)                  -> battery (%)
// Outputs: volumeIndex = pulses x litres per pulse, in m3 (the meter index),
// flow in L/h, and the alarms as booleans.

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function u32(b, i) {
  // Multiplication, not <<, so the top bit does not make it negative.
  return b[i] * 16777216 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
}

var LITRES_PER_PULSE = [1, 10, 100, 1000];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length < 9) {
    return { errors: ["payload of " + b.length + " bytes, expected 9"] };
  }
  var lpp = LITRES_PER_PULSE[b[5]];
  if (lpp === undefined) {
    return { errors: ["unknown litres-per-pulse code " + b[5]] };
  }
  var pulses = u32(b, 1);
  var data = {
    pulses: pulses,
    litresPerPulse: lpp,
    volumeIndex: (pulses * lpp) / 1000,
    flow: u16(b, 6),
    leak: (b[0] & 1) !== 0,
    backflow: (b[0] & 2) !== 0,
    tamper: (b[0] & 4) !== 0,
    lowBattery: (b[0] & 8) !== 0,
  };
  var warnings = [];
  if (b[8] === 255) {
    warnings.push("battery level unknown");
  } else {
    data.battery = b[8];
  }
  return { data: data, warnings: warnings };
}
