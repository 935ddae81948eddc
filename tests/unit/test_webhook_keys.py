"""A webhook public key of the wrong kind is refused where it is configured, not when a webhook arrives.

GHL signs with Ed25519 (x-ghl-signature) and RSA-SHA256 (x-wh-signature). A PEM key of another kind (an RSA key in
GHL_WEBHOOK_ED25519_PUBLIC_KEY, an EC key in GHL_WEBHOOK_PUBLIC_KEY) used to pass the environment check and then
fail every signed webhook with a TypeError from its verify() (a 500, not a refusal naming the variable)."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine.core.envcheck import EnvError, check_env
from engine.entrypoints.webhooks import SignatureKeys


def pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_PEM = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
EC_PEM = pem(ec.generate_private_key(ec.SECP256R1()).public_key())
ED_PEM = pem(ed25519.Ed25519PrivateKey.generate().public_key())

WRONG = [("GHL_WEBHOOK_ED25519_PUBLIC_KEY", RSA_PEM, "RSA"), ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", EC_PEM, "EC"),
         ("GHL_WEBHOOK_PUBLIC_KEY", EC_PEM, "EC"), ("GHL_WEBHOOK_PUBLIC_KEY", ED_PEM, "Ed25519")]


@pytest.mark.parametrize("name,value,kind", WRONG, ids=[f"{w[0]}={w[2]}" for w in WRONG])
def test_a_key_of_the_wrong_kind_is_an_environment_problem(name, value, kind):
    problems = check_env({name: value})
    assert len(problems) == 1, problems
    text = str(problems[0])
    assert text.startswith(f"environment variable {name}") and f"{kind} public key" in text, text


@pytest.mark.parametrize("name,value,kind", WRONG, ids=[f"{w[0]}={w[2]}" for w in WRONG])
def test_the_receiver_refuses_to_load_a_key_of_the_wrong_kind(monkeypatch, name, value, kind):
    monkeypatch.delenv("GHL_WEBHOOK_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("GHL_WEBHOOK_ED25519_PUBLIC_KEY", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(EnvError, match=f"{name}.*{kind} public key"):
        SignatureKeys.from_env()


def test_keys_of_the_right_kind_load(monkeypatch):
    monkeypatch.setenv("GHL_WEBHOOK_PUBLIC_KEY", RSA_PEM)
    monkeypatch.setenv("GHL_WEBHOOK_ED25519_PUBLIC_KEY", ED_PEM)
    assert check_env({"GHL_WEBHOOK_PUBLIC_KEY": RSA_PEM, "GHL_WEBHOOK_ED25519_PUBLIC_KEY": ED_PEM}) == []
    keys = SignatureKeys.from_env()
    assert isinstance(keys.rsa, rsa.RSAPublicKey) and isinstance(keys.ed25519, ed25519.Ed25519PublicKey)
