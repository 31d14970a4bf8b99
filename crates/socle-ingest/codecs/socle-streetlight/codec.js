// Socle reference layout: street-light node controller (one per light
// point, under the lamp head): switching, dimming, metering, fault report.
//
// fPort 1, status uplink, 8 bytes, big-endian:
//   0    bit0 lamp on, bit1 lamp fault (no current while on), bit2 manual
//        override of the schedule; other bits reserved (0)
//   1    dimming level, percent (0-100)                  -> dimmingLevel (%)
//   2-3  active power, 0.1 W                             -> activePower (W)
//   4-7  energy index, Wh, unsigned 32 bits              -> energyIndex (kWh)
// Outputs also powerState "on" / "off" and status "ok" / "defective", the
// text values of the demo's series.

function u32(b, i) {
  return b[i] * 16777216 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
}

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length < 8) {
    return { errors: ["payload of " + b.length + " bytes, expected 8"] };
  }
  if (b[1] > 100) {
    return { errors: ["dimming level " + b[1] + " % is not a percentage"] };
  }
  var on = (b[0] & 1) !== 0;
  var fault = (b[0] & 2) !== 0;
  var data = {
    powerState: on ? "on" : "off",
    status: fault ? "defective" : "ok",
    override: (b[0] & 4) !== 0,
    dimmingLevel: b[1],
    activePower: ((b[2] << 8) | b[3]) / 10,
    energyIndex: u32(b, 4) / 1000,
  };
  var warnings = [];
  if (!on && data.activePower > 5) {
    warnings.push("lamp off but drawing " + data.activePower + " W");
  }
  return { data: data, warnings: warnings };
}
