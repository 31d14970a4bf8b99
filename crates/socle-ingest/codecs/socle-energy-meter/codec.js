// Socle reference layout: optical/pulse reader on an electricity or gas
// meter of a public building (energy monitoring, consumption indexes).
//
// fPort 1, periodic uplink, 10 bytes, big-endian:
//   0    meter type: 1 = electricity, 2 = gas
//   1-6  index, unsigned 48 bits: electricity in Wh, gas in litres (dm3)
//   7-8  electricity: active power in units of 10 W; gas: flow in units of 10 L/h
//   9    flags: bit0 index reset since the previous uplink, bit1 tamper,
//        bit2 low battery
// Outputs, electricity: energyIndex (kWh), activePower (kW);
//          gas:         volumeIndex (m3), flow (m3/h);
//          both:        meterType, indexReset, tamper, lowBattery.

function u16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function u48(b, i) {
  // Built with multiplications: JavaScript bit operators are 32-bit.
  var v = 0;
  for (var k = 0; k < 6; k++) {
    v = v * 256 + b[i + k];
  }
  return v;
}

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length < 10) {
    return { errors: ["payload of " + b.length + " bytes, expected 10"] };
  }
  var index = u48(b, 1);
  var rate = u16(b, 7) * 10;
  var flags = {
    indexReset: (b[9] & 1) !== 0,
    tamper: (b[9] & 2) !== 0,
    lowBattery: (b[9] & 4) !== 0,
  };
  var data;
  if (b[0] === 1) {
    data = { meterType: "electricity", energyIndex: index / 1000, activePower: rate / 1000 };
  } else if (b[0] === 2) {
    data = { meterType: "gas", volumeIndex: index / 1000, flow: rate / 1000 };
  } else {
    return { errors: ["unknown meter type " + b[0]] };
  }
  for (var k in flags) {
    data[k] = flags[k];
  }
  var warnings = flags.indexReset ? ["index was reset: do not compute a consumption across this uplink"] : [];
  return { data: data, warnings: warnings };
}
