// AWS SNS interop: hookdock's SNS signer and verifier against AWS's own `sns-validator` (npm,
// aws/aws-js-sns-message-validator), both ways.
//
// - hookdock signs (testing::SnsSigner), sns-validator must accept, and refuse once the
//   message is changed;
// - Node's crypto (OpenSSL) signs the canonical string written here from AWS's documentation;
//   sns-validator must accept it (so the signer is right by AWS's library), and hookdock's
//   verify layer must accept it (a notification passes, a subscription confirmation is
//   answered) and refuse it once changed.
//
// Versions 1 (SHA1withRSA) and 2 (SHA256withRSA), Notification and SubscriptionConfirmation.
// (UnsubscribeConfirmation is left out: sns-validator signs it with the notification's keys,
// without `Token`, where AWS's documentation lists `Token`; hookdock follows the documentation.)
// The certificate is a self-signed one made with the openssl command line; sns-validator's
// `https.get` is served it from memory, so nothing leaves the machine.
//
// Usage: node sns.mjs PATH_TO_SNS_INTEROP_BINARY   (from a directory whose node_modules holds
// sns-validator; exits non-zero on any mismatch)

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { createSign } from "node:crypto";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);
const HOOKDOCK = process.argv[2];
const CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-interop.pem";
const TOPIC = "arn:aws:sns:us-east-1:123456789012:interop";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hookdock-sns-"));
const keyFile = path.join(dir, "key.pem");
const certFile = path.join(dir, "cert.pem");
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile,
  "-out", certFile, "-days", "2", "-subj", "/CN=sns.amazonaws.com"], { stdio: "ignore" });
const key = fs.readFileSync(keyFile, "utf8");
const cert = fs.readFileSync(certFile, "utf8");

// sns-validator fetches the certificate with https.get: serve ours, refuse anything else.
https.get = (url, callback) => {
  const response = new EventEmitter();
  response.statusCode = url === CERT_URL ? 200 : 404;
  process.nextTick(() => {
    callback(response);
    if (response.statusCode === 200) response.emit("data", Buffer.from(cert));
    response.emit("end");
  });
  return new EventEmitter();
};
const MessageValidator = require("sns-validator");
const validator = new MessageValidator();
const awsAccepts = (body) =>
  new Promise((resolve) => validator.validate(body, (err) => resolve(err ? err.message : true)));

const hookdockVerify = (body) =>
  execFileSync(HOOKDOCK, ["verify", certFile, CERT_URL], { input: body }).toString().trim();
const hookdockSign = (version, type) =>
  execFileSync(HOOKDOCK, ["sign", keyFile, CERT_URL, version, type]).toString().trim();

// The canonical string, from AWS's documentation ("Verifying the signatures of Amazon SNS
// messages"): name\nvalue\n for each signed field present, in this order.
function stringToSign(m) {
  const names = m.Type === "Notification"
    ? ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    : ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"];
  return names.filter((n) => n in m).map((n) => `${n}\n${m[n]}\n`).join("");
}

function nodeSigned(version, type) {
  const m = {
    Type: type,
    MessageId: `node-${version}-${type}`,
    TopicArn: TOPIC,
    Message: type === "Notification"
      ? '{"order":"B-7"}\nsecond line, "quoted", ünïcödé'
      : `You have chosen to subscribe to the topic ${TOPIC}.`,
    Timestamp: "2026-01-02T03:04:05.678Z",
    SignatureVersion: version,
    SigningCertURL: CERT_URL,
  };
  if (type === "Notification") m.Subject = "From Node";
  else {
    m.Token = "2336412f37fb687f5d51e6e241d09c8";
    m.SubscribeURL = `https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=${m.Token}`;
  }
  const signer = createSign(version === "1" ? "RSA-SHA1" : "RSA-SHA256");
  signer.update(stringToSign(m), "utf8");
  m.Signature = signer.sign(key, "base64");
  return JSON.stringify(m);
}

const checks = [];
const check = (name, ok, detail = "") => checks.push([name, ok === true, detail]);
const change = (body) => {
  const m = JSON.parse(body);
  m.Message += " (changed)";
  return JSON.stringify(m);
};

for (const version of ["1", "2"]) {
  for (const type of ["Notification", "SubscriptionConfirmation"]) {
    const label = `${type} v${version}`;
    const ours = hookdockSign(version, type);
    const ok = await awsAccepts(ours);
    check(`sns-validator accepts hookdock's ${label}`, ok, String(ok));
    check(`sns-validator refuses hookdock's ${label} [changed]`, (await awsAccepts(change(ours))) !== true);

    const theirs = nodeSigned(version, type);
    const aws = await awsAccepts(theirs);
    check(`sns-validator accepts Node's ${label} (the independent signer is right)`, aws, String(aws));
    const answer = hookdockVerify(theirs);
    const expected = type === "Notification" ? `valid node-${version}-${type}` : "answered 200";
    check(`hookdock accepts Node's ${label}`, answer === expected, answer);
    const refused = hookdockVerify(change(theirs));
    check(`hookdock refuses Node's ${label} [changed]`, refused === "bad_signature", refused);
  }
}

fs.rmSync(dir, { recursive: true, force: true });
const failed = checks.filter(([, ok]) => !ok);
for (const [name, ok, detail] of checks) {
  console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : `\n     ${detail}`));
}
console.log(`sns interop: ${checks.length - failed.length}/${checks.length} checks passed`);
process.exit(failed.length ? 1 : 0);
