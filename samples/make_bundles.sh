#!/usr/bin/env bash
# Makes the demo plant's project bundles with fresh certificates (nothing committed expires):
#   samples/make_bundles.sh OUT [PLC1_PORT]
# OUT/plc/           the plant CA (ca.pem, ca.key) and PLC1's certificate and key (plc1.crt/.key),
#                    issued by that CA with SAN IP 127.0.0.1, for plcsim to present
# OUT/bundle-inline/plant.scadaexport.xml   the CA as der-base64 and PLC1's certificate as PEM,
#                                           inside the document
# OUT/bundle-folder/                        plant.scadaexport.xml naming certs/plant-ca.der and
#                                           certs/plc1.pem
# Both bundles describe PLC1 (127.0.0.1:PLC1_PORT, default 21102, s7-secure) and the symbols of
# plcsim's process data block DB100.
set -euo pipefail
out=${1:?usage: make_bundles.sh OUT [PLC1_PORT]}
port=${2:-21102}
mkdir -p "$out/plc" "$out/bundle-inline" "$out/bundle-folder/certs"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -keyout "$out/plc/ca.key" -out "$out/plc/ca.pem" -subj "/O=Demo Plant/CN=Demo Plant CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Demo Plant/CN=PLC1" \
  -keyout "$out/plc/plc1.key" -out "$out/plc/plc1.csr" 2>/dev/null
openssl x509 -req -in "$out/plc/plc1.csr" -CA "$out/plc/ca.pem" -CAkey "$out/plc/ca.key" \
  -CAcreateserial -days 30 -out "$out/plc/plc1.crt" \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') 2>/dev/null
chmod 600 "$out/plc/ca.key" "$out/plc/plc1.key"

symbols() {
  cat <<XML
    <Symbols>
      <Symbol name="Process.Counter"  address="DB100.DBD0"  type="DInt" cycle="500ms" comment="+1 per plcsim tick"/>
      <Symbol name="Process.Sawtooth" address="DB100.DBD4"  type="Real" cycle="500ms" comment="0..100"/>
      <Symbol name="Process.Sine"     address="DB100.DBD8"  type="Real" cycle="500ms"/>
      <Symbol name="Process.TickMs"   address="DB100.DBW12" type="Int"  access="rw"/>
      <Symbol name="Line1.Running"    address="DB1.DBX0.0"  type="Bool" access="rw"/>
      <Symbol name="Line1.Setpoint"   address="DB1.DBD2"    type="Real" access="rw"/>
    </Symbols>
XML
}
document() {  # $1: the <Certificate> elements
  cat <<XML
<?xml version="1.0" encoding="utf-8"?>
<ScadaExport formatVersion="1" tool="samples/make_bundles.sh" project="Demo Plant"
             exportedAt="$(date -u +%Y-%m-%dT%H:%M:%SZ)">
  <Plc name="PLC1" module="CPU 1516-3 PN/DP" firmware="V2.9.4">
    <Connection address="127.0.0.1" port="$port" security="s7-secure"/>
    <Certificates>
$1
    </Certificates>
$(symbols)
  </Plc>
</ScadaExport>
XML
}

ca_base64=$(openssl x509 -in "$out/plc/ca.pem" -outform DER | openssl base64 -A)
document "      <Certificate role=\"ca\" encoding=\"der-base64\">$ca_base64</Certificate>
      <Certificate role=\"plc\" encoding=\"pem\">
$(cat "$out/plc/plc1.crt")
      </Certificate>" >"$out/bundle-inline/plant.scadaexport.xml"

openssl x509 -in "$out/plc/ca.pem" -outform DER -out "$out/bundle-folder/certs/plant-ca.der"
cp "$out/plc/plc1.crt" "$out/bundle-folder/certs/plc1.pem"
document '      <Certificate role="ca" file="certs/plant-ca.der"/>
      <Certificate role="plc" file="certs/plc1.pem"/>' >"$out/bundle-folder/plant.scadaexport.xml"
