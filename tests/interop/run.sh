#!/usr/bin/env bash
# Interop with signers nobody on this project wrote: installs providers' official libraries
# from PyPI and npm into a temporary directory, then checks both directions for each provider
# (they sign → hookdock accepts; hookdock's test signer signs → they accept; and each side
# refuses a changed body). Exits non-zero on any mismatch.
#
# Needs: cargo, python3 (with venv and pip), node and npm, the openssl command line (SNS), and
# network access to the registries.
# Usage: tests/interop/run.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/interop"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Builds the example $1 with features $2 and prints its executable.
build_example() {
    (cd "$root" && cargo build --quiet --example "$1" --features "$2" --message-format=json) |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -n 1
}

echo "== interop: building hookdock's interop drivers (examples/interop.rs, examples/sns_interop.rs)"
bin="$(build_example interop test-util,ed25519,p256)"
sns_bin="$(build_example sns_interop test-util,aws-sns)"
[ -x "$bin" ] && [ -x "$sns_bin" ] || { echo "interop driver not built" >&2; exit 1; }

echo "== interop: installing official Python libraries"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
    standardwebhooks==1.1.0 svix==2.9.1 stripe==16.1.0 slack_sdk==3.48.0 twilio==9.13.0 \
    discord-interactions==0.4.0 razorpay==2.0.1 coinbase-commerce==1.0.1

echo "== interop: installing official Node libraries"
mkdir -p "$work/node"
cp "$here/interop.mjs" "$work/node/"
(cd "$work/node" && printf '{"private":true}\n' > package.json &&
    npm install --silent --no-audit --no-fund \
        @octokit/webhooks-methods@6.0.0 standardwebhooks@1.1.1 discord-interactions@4.4.0 \
        @sendgrid/eventwebhook@8.0.0 @mux/mux-node@15.3.0 >/dev/null)

status=0
echo "== interop: Python (standardwebhooks, svix, stripe, slack_sdk, twilio, discord-interactions, razorpay, coinbase-commerce)"
"$work/venv/bin/python" "$here/interop.py" "$bin" || status=1
echo "== interop: Node (@octokit/webhooks-methods, standardwebhooks, discord-interactions, @sendgrid/eventwebhook, @mux/mux-node)"
(cd "$work/node" && node interop.mjs "$bin") || status=1

echo "== interop: AWS SNS (sns-validator, AWS's npm validator; Node's crypto as the independent signer)"
mkdir -p "$work/sns"
cp "$here/sns.mjs" "$work/sns/"
(cd "$work/sns" && printf '{"private":true}\n' > package.json &&
    npm install --silent --no-audit --no-fund sns-validator@0.3.5 >/dev/null &&
    node sns.mjs "$sns_bin") || status=1

if [ "$status" -ne 0 ]; then
    echo "== interop: FAILED" >&2
fi
exit "$status"
