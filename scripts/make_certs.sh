#!/usr/bin/env bash
# Makes a certificate authority and a server certificate signed by it, for TLS on the device link
# (edge_server --tls-cert/--tls-key, device_client --tls --tls-ca). For tests and trials: in
# production, use certificates from your own CA.
#   scripts/make_certs.sh OUT_DIR [NAME ...]
# NAMEs go into the server certificate's subjectAltName (an IP address or a DNS name; default:
# localhost 127.0.0.1). Writes OUT_DIR/ca.pem, ca.key, server.pem (leaf then CA), server.key.
# Keys are ECDSA P-256; the certificates are valid for DAYS (default 36500) days.
#   edge_server --listen 0.0.0.0:7070 --tls-cert OUT_DIR/server.pem --tls-key OUT_DIR/server.key
#   device_client --server HOST:7070 --tls --tls-ca OUT_DIR/ca.pem
set -euo pipefail
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
command -v openssl >/dev/null || { echo "make_certs: needs openssl (apt-get install openssl)" >&2; exit 1; }
out=$1
shift
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(localhost 127.0.0.1)
days=${DAYS:-36500}
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}

openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=splitinfer test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$out/server.key" 2>/dev/null
openssl req -new -key "$out/server.key" -subj "/CN=${names[0]}" -out "$tmp/server.csr"
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
  -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/leaf.pem" 2>/dev/null
cat "$tmp/leaf.pem" "$out/ca.pem" >"$out/server.pem"
chmod 644 "$out/ca.pem" "$out/server.pem"
echo "make_certs: $out/{ca.pem,server.pem,server.key} for ${names[*]} (valid $days days)"
