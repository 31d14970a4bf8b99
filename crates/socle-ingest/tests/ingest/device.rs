use socle_ingest::device::{import_csv, MAX_REPORTED_ERRORS};
use socle_ingest::{DevEui, Transform, ValueKind};

const GOOD: &str = "\
dev_eui,name,model,organisation,entity,field,attribute,unit,kind,scale,offset,expression,min,max
a84041000181c7e2,bac-verre-mairie,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:verre-012,Distance,fillingLevel,C62,,,,1 - value / depth,0,1
a84041000181c7e2,bac-verre-mairie,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:verre-012,Bat,batteryVoltage,VLT,,,,,,
a84041000181c7e2,bac-verre-mairie,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:verre-012,TempC_DS18B20,temperature,CEL,number,,,,-40,85
0004a30b001c2f01,eclairage-12,socle-streetlight,montclar,urn:ngsi-ld:Streetlight:montclar:12,powerState,powerState,,text,,,,,
0004a30b001c2f01,eclairage-12,socle-streetlight,montclar,urn:ngsi-ld:Streetlight:montclar:12,activePower,activePower,KWT,,0.001,,,,
0004a30b001c2f02,riviere-pont,socle-river-level,montclar,urn:ngsi-ld:FloodMonitoring:montclar:pont,,,,,,,,,
";

#[test]
fn import_good_file() {
    let out = import_csv(GOOD.as_bytes());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.devices.len(), 3);
    let bac = &out.devices[0];
    assert_eq!(bac.dev_eui, DevEui::parse("A84041000181C7E2").unwrap());
    assert_eq!(
        (bac.name.as_str(), bac.model.as_str(), bac.organisation.as_str()),
        ("bac-verre-mairie", "dragino-ldds75", "saint-aubin")
    );
    assert_eq!(bac.mappings.len(), 3);
    assert!(
        matches!(&bac.mappings[0].transform, Transform::Expression { formula } if formula.as_str() == "1 - value / depth")
    );
    assert_eq!(bac.mappings[0].range, Some((0.0, 1.0)));
    assert_eq!(bac.mappings[2].kind, ValueKind::Number);
    let light = &out.devices[1];
    assert_eq!(light.mappings[0].kind, ValueKind::Text);
    assert_eq!(light.mappings[1].transform, Transform::Linear { scale: 0.001, offset: 0.0 });
    assert!(out.devices[2].mappings.is_empty());
}

#[test]
fn french_spreadsheet_export() {
    // Semicolons, decimal commas, a byte-order mark, columns in another order and case, CRLF.
    let csv = "\u{feff}Name;DEV_EUI;model;organisation;entity;field;attribute;scale;offset\r\n\
               compteur;0004A30B001C2F03;socle-water-meter;montclar;urn:ngsi-ld:WaterMeter:montclar:3;flow;flow;0,001;-0,5\r\n";
    let out = import_csv(csv.as_bytes());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.devices[0].mappings[0].transform, Transform::Linear { scale: 0.001, offset: -0.5 });
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let csv = "\
dev_eui,name,model,organisation,entity,field,attribute,unit,kind,scale,offset,expression,min,max
a84041000181c7e2,bac-1,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:1,Distance,fillingLevel,C62,,,,1 - value / depth,0,1
a84041000181c7e2,bac-1,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:1,Bat,battery voltage,,,,,,,
a84041000181c7e3,bac-2,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:2,Distance,fillingLevel,C62,,,,1 - value /,0,1
a84041000181c7e3,bac-2,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:2,Bat,batteryVoltage,,,,,,,
a84041000181c7e4,bac-3,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:3,Distance,fillingLevel,C62,,,,,0,
a84041000181c7e5,bac-4,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:4,Bat,batteryVoltage,,,,,,,
a84041000181c7e5,bac-4,dragino-ldds75,montclar,urn:ngsi-ld:WasteContainer:saint-aubin:4,Distance,distance,,,,,,,
a84041000181c7e6,bac-4,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:6,,,,,,,,,
a84041000181c7e7,bac-7,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:7,Bat,batteryVoltage,,,,,,,
a84041000181c7e7,bac-7,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:7,Bat,batteryVoltage,,,,,,,
zz,bac-8,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:8,,,,,,,,,
a84041000181c7e9,bac-9,Dragino LDDS75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:9,,,,,,,,,
a84041000181c7ea,bac-10,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:10,Bat,,,,,,,,
a84041000181c7eb,bac-11,dragino-ldds75,saint-aubin,not-an-urn,,,,,,,,,
a84041000181c7ec,bac-12,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:12
a84041000181c7ed,bac-13,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:13,t,temperature,,text,2,,,,
a84041000181c7ee,bac-14,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:14,t,temperature,,,2,,value*2,,
a84041000181c7ef,bac-15,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:15,t,temperature,,,,,,1,0
a84041000181c7f0,bac-16,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:16,t,temperature,,,abc,,,,
a84041000181c7f1,bac-17,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:17,,,KWT,,,,,,
a84041000181c7f2,bac-18,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:18,t,temperature,,fuzzy,,,,,
a84041000181c7f3,bac-ok,dragino-ldds75,saint-aubin,urn:ngsi-ld:WasteContainer:saint-aubin:19,Bat,batteryVoltage,VLT,,,,,,
";
    let out = import_csv(csv.as_bytes());
    let names: Vec<_> = out.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["bac-ok"]);
    let at =
        |line: u64| -> Vec<String> { out.errors.iter().filter(|e| e.line == line).map(ToString::to_string).collect() };
    let has = |line: u64, text: &str| {
        assert!(at(line).iter().any(|e| e.contains(text)), "line {line}: expected {text:?} in {:?}", at(line))
    };
    has(3, "line 3, column `attribute`: invalid attribute name");
    has(2, "device a84041000181c7e2 not imported because of line(s) 3");
    has(4, "column `expression`");
    has(4, "not imported because of line(s) 4, 5");
    has(6, "column `max`: required with `min`");
    has(8, "column `organisation`: differs from line 7");
    has(9, "column `name`: name \"bac-4\" is already used by device a84041000181c7e5");
    has(11, "batteryVoltage is already mapped for this device");
    has(12, "column `dev_eui`: invalid DevEUI");
    has(13, "column `model`");
    has(14, "column `attribute`: required with `field`");
    has(15, "column `entity`");
    has(16, "5 fields, expected 14");
    has(17, "a text mapping cannot have a transform or a range");
    has(18, "not both");
    has(19, "range 1..0");
    has(20, "column `scale`: \"abc\" is not a number");
    has(21, "column `unit`: a mapping setting without");
    has(22, "column `kind`");
    assert!(at(23).is_empty());
}

#[test]
fn header_problems() {
    let out = import_csv(b"dev_eui,name,model,organisation\n");
    assert!(out.devices.is_empty());
    assert_eq!(out.errors[0].to_string(), "line 1, column `entity`: required column missing");
    let out = import_csv(b"dev_eui,name,model,organisation,entity,colour\n");
    assert!(out.errors[0].message.contains("unknown column \"colour\""));
    let out = import_csv(b"dev_eui,name,model,organisation,entity,name\n");
    assert_eq!(out.errors[0].to_string(), "line 1, column `name`: column given twice");
    let out = import_csv(b"");
    assert!(!out.errors.is_empty());
    let out = import_csv(&vec![b'a'; socle_ingest::device::MAX_CSV_BYTES + 1]);
    assert!(out.errors[0].message.contains("exceeds the limit"));
}

#[test]
fn error_list_is_bounded_but_import_goes_on() {
    let mut csv = String::from("dev_eui,name,model,organisation,entity\n");
    for i in 0..1500 {
        csv.push_str(&format!("bad{i},n{i},m,o,urn:ngsi-ld:T:x\n"));
    }
    csv.push_str("a84041000181c7e2,good,m,o,urn:ngsi-ld:T:x\n");
    let out = import_csv(csv.as_bytes());
    assert_eq!(out.errors.len(), MAX_REPORTED_ERRORS);
    assert_eq!(out.more_errors, 500);
    assert_eq!(out.devices.len(), 1);
}

#[test]
fn non_utf8_and_quotes() {
    let mut csv = b"dev_eui,name,model,organisation,entity\n".to_vec();
    csv.extend_from_slice(b"a84041000181c7e2,caf\xe9,m,o,urn:ngsi-ld:T:x\n");
    csv.extend_from_slice(b"a84041000181c7e3,\"bac, \"\"quai\"\"\",m,o,urn:ngsi-ld:T:y\n");
    let out = import_csv(&csv);
    assert_eq!(out.errors[0].to_string(), "line 2, column `name`: not valid UTF-8");
    assert_eq!(out.devices.len(), 1);
    assert_eq!(out.devices[0].name, "bac, \"quai\"");
}
