// Socle reference layout: in-ground magnetometer parking sensor, one per
// on-street space.
//
// fPort 1, 2 bytes (4 with the duration option):
//   0    bit0 space occupied, bit1 sent on a state change (else a heartbeat),
//        bit7 magnetometer fault; other bits reserved (0)
//   1    battery, percent (0-100)
//   2-3  minutes in the current state, unsigned (optional; 0xFFFF = over 45 days)
// Outputs: status "occupied" / "free" (the demo's text series), occupied
// true / false (mapped as 1 / 0 for occupancy rates), trigger "change" /
// "heartbeat", battery, minutesInState. On a fault the state is not trusted:
// status and occupied are left out, fault: true is reported with a warning.

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 1) {
    return { errors: ["unsupported fPort " + input.fPort] };
  }
  if (b.length !== 2 && b.length !== 4) {
    return { errors: ["payload of " + b.length + " bytes, expected 2 or 4"] };
  }
  if (b[1] > 100) {
    return { errors: ["battery " + b[1] + " % is not a percentage"] };
  }
  var data = {
    trigger: b[0] & 2 ? "change" : "heartbeat",
    battery: b[1],
    fault: (b[0] & 0x80) !== 0,
  };
  var warnings = [];
  if (data.fault) {
    warnings.push("magnetometer fault: occupancy unknown");
  } else {
    data.occupied = (b[0] & 1) !== 0;
    data.status = data.occupied ? "occupied" : "free";
  }
  if (b.length === 4) {
    var minutes = (b[2] << 8) | b[3];
    if (minutes !== 0xffff) {
      data.minutesInState = minutes;
    }
  }
  return { data: data, warnings: warnings };
}
