// Interop between hookdock and providers' official Node libraries, both ways.
//
// GitHub through @octokit/webhooks-methods, Standard Webhooks through the `standardwebhooks`
// npm package: what they sign, hookdock must accept (and refuse once the body is changed);
// what hookdock's test signer signs, they must accept (and refuse once the body is changed).
// Discord (discord-interactions), SendGrid (@sendgrid/eventwebhook) and Mux (@mux/mux-node)
// only verify, so for them only the second direction is checked. hookdock is driven through
// `examples/interop.rs`.
//
// Usage: node interop.mjs PATH_TO_INTEROP_BINARY   (run from a directory whose node_modules
// holds the libraries; exits non-zero on any mismatch)

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { sign as githubSign, verify as githubVerify } from "@octokit/webhooks-methods";
import swPkg from "standardwebhooks";
import { verifyKey as discordVerify } from "discord-interactions";
import sendgridPkg from "@sendgrid/eventwebhook";
import Mux from "@mux/mux-node";

const { Webhook } = swPkg;
const { EventWebhook } = sendgridPkg;
const HOOKDOCK = process.argv[2];
const NOW = Math.floor(Date.now() / 1000);
const BODIES = [
  '{"zen":"Keep it logically awesome.","hook_id":1}',
  '{"text":"h\u00e9llo w\u00f6rld \u2713 \u{1f600}","n":[1,2.5,-3],"q":"a\\"b"}',
  '{\n  "pretty": true,\n  "spaces": "  kept  "\n}\n',
  '{"big":"' + "x".repeat(70000) + '"}',
];

const checks = [];
const check = (name, ok, detail = "") => checks.push([name, !!ok, detail]);
const tamper = (body) => (body ? body + " " : "x");
const header = (answer, name) => answer.headers.find(([n]) => n === name)?.[1];

function hookdock(requests) {
  const out = execFileSync(HOOKDOCK, { input: JSON.stringify(requests), maxBuffer: 1 << 26 });
  const answers = JSON.parse(out.toString());
  if (answers.length !== requests.length) throw new Error("hookdock answered a different count");
  return answers;
}

const theirs = []; // [name, verify request, expected: true or a rejection kind, expected id]
const ours = []; // [name, sign request, async (answer) => their library accepts]

function fromThem(name, provider, secrets, headers, body, expectId) {
  const base = { op: "verify", provider, secrets, uri: "/", now: NOW };
  theirs.push([name, { ...base, headers, body }, true, expectId]);
  theirs.push([`${name} [body changed]`, { ...base, headers, body: tamper(body) }, "bad_signature"]);
}

function fromUs(name, provider, secrets, body, accepts, extra = {}) {
  ours.push([name, { op: "sign", provider, secrets, body, timestamp: NOW, ...extra }, accepts]);
}

for (const [i, body] of BODIES.entries()) {
  // GitHub
  const ghSecret = randomBytes(20).toString("hex");
  const delivery = `72d3162e-cc78-11e3-81ab-4c9367dc09${String(i).padStart(2, "0")}`;
  fromThem(
    `@octokit/webhooks-methods sign #${i}`,
    "github",
    [ghSecret],
    [
      ["x-hub-signature-256", await githubSign(ghSecret, body)],
      ["x-github-delivery", delivery],
      ["x-github-event", "push"],
    ],
    body,
    delivery,
  );
  fromUs(
    `@octokit/webhooks-methods verify #${i}`,
    "github",
    [ghSecret],
    body,
    (a) => githubVerify(ghSecret, a.body, header(a, "x-hub-signature-256")),
    { id: delivery, event_type: "push" },
  );

  // Standard Webhooks
  const swSecret = "whsec_" + randomBytes(24).toString("base64");
  const msgId = `msg_node_${i}`;
  const sig = new Webhook(swSecret).sign(msgId, new Date(NOW * 1000), body);
  fromThem(
    `standardwebhooks (npm) sign #${i}`,
    "standard-webhooks",
    [swSecret],
    [
      ["webhook-id", msgId],
      ["webhook-timestamp", String(NOW)],
      ["webhook-signature", sig],
    ],
    body,
    msgId,
  );
  fromUs(
    `standardwebhooks (npm) verify #${i}`,
    "standard-webhooks",
    [swSecret],
    body,
    async (a) => {
      try {
        new Webhook(swSecret).verify(a.body, Object.fromEntries(a.headers), { jsonParse: false });
        return true;
      } catch {
        return false;
      }
    },
    { id: msgId },
  );
}

for (const [i, body] of BODIES.entries()) {
  // Discord: hookdock signs with an Ed25519 key; discord-interactions verifies with its
  // public key (hex, as the Developer Portal shows it).
  fromUs(`discord-interactions verifyKey #${i}`, "discord", [randomBytes(32).toString("hex")],
    body, (a) => discordVerify(a.body, header(a, "x-signature-ed25519"),
      header(a, "x-signature-timestamp"), a.public_key));

  // SendGrid: an ECDSA P-256 key; the verification key SendGrid shows is base64 DER.
  fromUs(`@sendgrid/eventwebhook verifySignature #${i}`, "sendgrid",
    [randomBytes(32).toString("base64")], body, (a) => {
      const ew = new EventWebhook();
      const pem = `-----BEGIN PUBLIC KEY-----\n${a.public_key}\n-----END PUBLIC KEY-----`;
      return ew.verifySignature(ew.convertPublicKeyToECDSA(pem), a.body,
        header(a, "x-twilio-email-event-webhook-signature"),
        header(a, "x-twilio-email-event-webhook-timestamp"));
    });

  // Mux
  const muxSecret = randomBytes(16).toString("hex");
  const mux = new Mux({ tokenId: "interop", tokenSecret: "interop" });
  fromUs(`@mux/mux-node webhooks.verifySignature #${i}`, "mux", [muxSecret], body, async (a) => {
    try {
      await mux.webhooks.verifySignature(a.body, Object.fromEntries(a.headers), muxSecret);
      return true;
    } catch {
      return false;
    }
  });
}

const answers = hookdock(theirs.map(([, r]) => r));
theirs.forEach(([name, , expected, expectId], k) => {
  const a = answers[k];
  if (a.error) return check(`hookdock accepts ${name}`, false, a.error);
  if (expected === true) {
    check(`hookdock accepts ${name}`, a.ok && (!expectId || a.id === expectId), JSON.stringify(a));
  } else {
    check(`hookdock refuses ${name}`, !a.ok && a.kind === expected, JSON.stringify(a));
  }
});

const signed = hookdock(ours.map(([, r]) => r));
for (const [k, [name, , accepts]] of ours.entries()) {
  const a = signed[k];
  if (a.error) {
    check(`${name} accepts hookdock`, false, a.error);
    continue;
  }
  check(`${name} accepts hookdock`, await accepts(a), JSON.stringify(a).slice(0, 300));
  check(`${name} refuses hookdock [body changed]`, !(await accepts({ ...a, body: tamper(a.body) })));
}

const failed = checks.filter(([, ok]) => !ok);
for (const [name, ok, detail] of checks) {
  console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : `\n     ${detail}`));
}
console.log(`node interop: ${checks.length - failed.length}/${checks.length} checks passed`);
process.exit(failed.length ? 1 : 0);
