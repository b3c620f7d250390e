#!/usr/bin/env python3
"""Interop between hookdock and providers' official Python libraries, both ways.

For each provider: what the official library signs, hookdock must accept (and refuse once the
body is changed); what hookdock's test signer signs, the official library must accept (and
refuse once the body is changed). hookdock is driven through `examples/interop.rs`; nothing
of hookdock is reimplemented here.

Libraries: standardwebhooks and svix (Standard Webhooks v1, and the Clerk, Resend, OpenAI and
Replicate presets built on it), stripe, slack_sdk, twilio, and (hookdock signs, they verify:
they cannot sign) discord-interactions, razorpay, coinbase-commerce.

Usage: interop.py PATH_TO_INTEROP_BINARY    (exits non-zero on any mismatch)
"""

import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

import coinbase_commerce.webhook
import discord_interactions
import razorpay
import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
import twilio.request_validator

HOOKDOCK = sys.argv[1]
NOW = int(time.time())
BODIES = [
    '{"type":"ping","id":"evt_1"}',
    '{"id":"evt_2","data":{"text":"h\u00e9llo w\u00f6rld \u2713 \U0001f600","n":[1,2.5,-3]},"q":"a\\"b"}',
    "{\n  \"pretty\": true,\n  \"spaces\": \"  kept  \"\n}\n",
    '{"big":"' + "x" * 70000 + '"}',
]

checks = []  # (name, ok, detail)


def check(name, ok, detail=""):
    checks.append((name, bool(ok), detail))


def hookdock(requests):
    """Runs a batch of requests through hookdock; returns the answers in order."""
    out = subprocess.run(
        [HOOKDOCK], input=json.dumps(requests), capture_output=True, text=True, check=True
    )
    answers = json.loads(out.stdout)
    assert len(answers) == len(requests)
    return answers


def tamper(body):
    return body + " " if body else "x"


def random_whsec():
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


# Each provider contributes two lists:
#   theirs: (name, hookdock verify request, expected: True or a rejection kind)
#   ours:   (name, hookdock sign request, fn(answer) -> bool: their library accepts it,
#            expected: True/False)
theirs = []
ours = []


def expect_from_them(name, provider, secrets, headers, body, config=None, uri="/", expect_id=None):
    base = {"op": "verify", "provider": provider, "secrets": secrets, "config": config or {},
            "uri": uri, "now": NOW}
    theirs.append((name, dict(base, headers=headers, body=body), True, expect_id))
    theirs.append((name + " [body changed]", dict(base, headers=headers, body=tamper(body)),
                   "bad_signature", None))


def expect_from_us(name, provider, secrets, body, accept, config=None, **extra):
    request = {"op": "sign", "provider": provider, "secrets": secrets, "config": config or {},
               "body": body, "timestamp": NOW, **extra}
    ours.append((name, request, accept))


def header(answer, name):
    return next(v for n, v in answer["headers"] if n == name)


def headers_dict(answer):
    return {n: v for n, v in answer["headers"]}


def raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


# --- Standard Webhooks: standardwebhooks and svix -------------------------------------------
for i, body in enumerate(BODIES):
    secret, other = random_whsec(), random_whsec()
    at = datetime.fromtimestamp(NOW, tz=timezone.utc)
    msg_id = f"msg_interop_{i}"
    sig = standardwebhooks.Webhook(secret).sign(msg_id, at, body)
    expect_from_them(f"standardwebhooks.sign #{i}", "standard-webhooks", [secret],
                     [["webhook-id", msg_id], ["webhook-timestamp", str(NOW)],
                      ["webhook-signature", sig]], body, expect_id=msg_id)
    svix_sig = svix.webhooks.Webhook(other).sign(msg_id, at, body)
    expect_from_them(f"svix.sign (svix-* headers, 2nd secret) #{i}", "standard-webhooks",
                     [secret, other],
                     [["svix-id", msg_id], ["svix-timestamp", str(NOW)],
                      ["svix-signature", svix_sig]], body, expect_id=msg_id)
    # A rotation as senders do it: one signature per secret in one header.
    expect_from_them(f"standardwebhooks two signatures #{i}", "standard-webhooks", [other],
                     [["webhook-id", msg_id], ["webhook-timestamp", str(NOW)],
                      ["webhook-signature", f"{sig} {svix_sig}"]], body, expect_id=msg_id)

    def sw_accepts(answer, lib, secret=secret):
        h = headers_dict(answer)
        return not raises(lambda: lib(secret).verify(answer["body"], h), Exception)

    expect_from_us(f"standardwebhooks.verify #{i}", "standard-webhooks", [secret], body,
                   lambda a, s=secret: sw_accepts(a, standardwebhooks.Webhook, s), id=msg_id)
    expect_from_us(f"svix.verify #{i}", "standard-webhooks", [secret], body,
                   lambda a, s=secret: sw_accepts(a, svix.webhooks.Webhook, s), id=msg_id)

# --- Stripe -------------------------------------------------------------------------------
for i, body in enumerate(BODIES):
    secret = "whsec_" + base64.b16encode(os.urandom(16)).decode().lower()
    hdr = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=NOW)
    expect_from_them(f"stripe generate_signature_header #{i}", "stripe", [secret],
                     [["stripe-signature", hdr]], body)

    def stripe_accepts(answer, secret=secret):
        return not raises(lambda: stripe.WebhookSignature.verify_header(
            answer["body"], header(answer, "stripe-signature"), secret, tolerance=300),
            stripe.SignatureVerificationError)

    expect_from_us(f"stripe verify_header #{i}", "stripe", [secret], body, stripe_accepts)

# --- Slack --------------------------------------------------------------------------------
for i, body in enumerate(BODIES):
    secret = base64.b16encode(os.urandom(16)).decode().lower()
    sig = slack_sdk.signature.SignatureVerifier(secret).generate_signature(
        timestamp=str(NOW), body=body)
    expect_from_them(f"slack_sdk generate_signature #{i}", "slack", [secret],
                     [["x-slack-signature", sig], ["x-slack-request-timestamp", str(NOW)]], body)

    def slack_accepts(answer, secret=secret):
        return slack_sdk.signature.SignatureVerifier(secret).is_valid(
            body=answer["body"],
            timestamp=header(answer, "x-slack-request-timestamp"),
            signature=header(answer, "x-slack-signature"))

    expect_from_us(f"slack_sdk is_valid #{i}", "slack", [secret], body, slack_accepts)

# --- Twilio: form parameters, and JSON with bodySHA256 ------------------------------------
FORMS = [
    {"From": "+15551234567", "To": "+15557654321", "Body": "Hello \u2713 & goodbye = 1+1",
     "MessageSid": "SM" + "a" * 32},
    {"CallSid": "CA123", "Digits": "1234#", "b": "", "a": "x y", "\u00e9": "\u00fc"},
]
public = "https://interop.example.com"
config = {"public_url": public}
for i, params in enumerate(FORMS):
    token = base64.b16encode(os.urandom(16)).decode().lower()
    validator = twilio.request_validator.RequestValidator(token)
    path = f"/twilio/sms?tenant={i}"
    body = urlencode(params)
    form = [["content-type", "application/x-www-form-urlencoded"]]
    sig = validator.compute_signature(public + path, params)
    expect_from_them(f"twilio compute_signature (form) #{i}", "twilio", [token],
                     form + [["x-twilio-signature", sig]], body, config, uri=path)
    sig443 = validator.compute_signature(public + ":443" + path, params)
    expect_from_them(f"twilio compute_signature (form, :443) #{i}", "twilio", [token],
                     form + [["x-twilio-signature", sig443]], body, config, uri=path)

    def twilio_form_accepts(answer, validator=validator):
        return validator.validate(public + answer["uri"],
                                  dict(parse_qsl(answer["body"], keep_blank_values=True)),
                                  header(answer, "x-twilio-signature"))

    expect_from_us(f"twilio validate (form) #{i}", "twilio", [token], body,
                   twilio_form_accepts, config, uri=path,
                   content_type="application/x-www-form-urlencoded")

for i, body in enumerate(BODIES):
    token = base64.b16encode(os.urandom(16)).decode().lower()
    validator = twilio.request_validator.RequestValidator(token)
    path = f"/twilio/json?tenant={i}&bodySHA256={validator.compute_hash(body)}"
    sig = validator.compute_signature(public + path, {})
    expect_from_them(f"twilio compute_signature (JSON, bodySHA256) #{i}", "twilio", [token],
                     [["content-type", "application/json"], ["x-twilio-signature", sig]],
                     body, config, uri=path)

    def twilio_json_accepts(answer, validator=validator):
        return validator.validate(public + answer["uri"], answer["body"],
                                  header(answer, "x-twilio-signature"))

    expect_from_us(f"twilio validate (JSON, bodySHA256) #{i}", "twilio", [token], body,
                   twilio_json_accepts, config, uri=f"/twilio/json?tenant={i}",
                   content_type="application/json")

# --- Standard Webhooks senders: Clerk and Resend (through Svix), OpenAI and Replicate ------
NAMED = [("clerk", svix.webhooks.Webhook, "svix"), ("resend", svix.webhooks.Webhook, "svix"),
         ("openai", standardwebhooks.Webhook, "webhook"),
         ("replicate", standardwebhooks.Webhook, "webhook")]
for provider, lib, prefix in NAMED:
    for i, body in enumerate(BODIES[:3]):
        secret = random_whsec()
        at = datetime.fromtimestamp(NOW, tz=timezone.utc)
        msg_id = f"msg_{provider}_{i}"
        sig = lib(secret).sign(msg_id, at, body)
        expect_from_them(f"{lib.__module__} sign as {provider} #{i}", provider, [secret],
                         [[f"{prefix}-id", msg_id], [f"{prefix}-timestamp", str(NOW)],
                          [f"{prefix}-signature", sig]], body, expect_id=msg_id)

        def named_accepts(answer, lib=lib, secret=secret):
            h = headers_dict(answer)
            return not raises(lambda: lib(secret).verify(answer["body"], h), Exception)

        expect_from_us(f"{lib.__module__} verify ({provider}) #{i}", provider, [secret], body,
                       named_accepts, id=msg_id)

# --- Discord (Ed25519): discord-interactions verifies -------------------------------------
for i, body in enumerate(BODIES):
    private = os.urandom(32).hex()

    def discord_accepts(answer):
        return discord_interactions.verify_key(
            answer["body"].encode(), header(answer, "x-signature-ed25519"),
            header(answer, "x-signature-timestamp"), answer["public_key"])

    expect_from_us(f"discord-interactions verify_key #{i}", "discord", [private], body,
                   discord_accepts)

# --- Razorpay and Coinbase Commerce: their libraries verify --------------------------------
rzp = razorpay.Utility(razorpay.Client(auth=("rzp_test_key", "rzp_test_secret")))
for i, body in enumerate(BODIES):
    secret = base64.b16encode(os.urandom(12)).decode().lower()

    def razorpay_accepts(answer, secret=secret):
        return not raises(lambda: rzp.verify_webhook_signature(
            answer["body"], header(answer, "x-razorpay-signature"), secret), Exception)

    expect_from_us(f"razorpay verify_webhook_signature #{i}", "razorpay", [secret], body,
                   razorpay_accepts, id=f"evt_{i}")

    def coinbase_accepts(answer, secret=secret):
        return not raises(lambda: coinbase_commerce.webhook.WebhookSignature.verify_sig_header(
            answer["body"], header(answer, "x-cc-webhook-signature"), secret), Exception)

    expect_from_us(f"coinbase-commerce verify_sig_header #{i}", "coinbase-commerce", [secret],
                   body, coinbase_accepts)

# --- Run ----------------------------------------------------------------------------------
answers = hookdock([r for _, r, _, _ in theirs])
for (name, _, expected, expect_id), answer in zip(theirs, answers):
    if "error" in answer:
        check("hookdock accepts " + name, False, answer["error"])
    elif expected is True:
        ok = answer["ok"] and (expect_id is None or answer["id"] == expect_id)
        check("hookdock accepts " + name, ok, json.dumps(answer))
    else:
        check("hookdock refuses " + name, not answer["ok"] and answer["kind"] == expected,
              json.dumps(answer))

signed = hookdock([r for _, r, _ in ours])
for (name, _, accept), answer in zip(ours, signed):
    if "error" in answer:
        check(name + " accepts hookdock", False, answer["error"])
        continue
    check(name + " accepts hookdock", accept(answer), json.dumps(answer)[:300])
    changed = dict(answer, body=tamper(answer["body"]))
    check(name + " refuses hookdock [body changed]", not accept(changed))

failed = [c for c in checks if not c[1]]
for name, ok, detail in checks:
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else "\n     " + detail))
print(f"python interop: {len(checks) - len(failed)}/{len(checks)} checks passed")
sys.exit(1 if failed else 0)
