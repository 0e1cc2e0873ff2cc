// trustgate's passkey ceremonies: the only script of the sign-in and account pages. For each
// element with data-passkey ("signin" or "register") it shows the button when the browser has
// WebAuthn, and on a click posts the element's form fields to data-options-url, hands the
// options to navigator.credentials, and submits the form with the answer in "credential".
(function () {
  "use strict";

  var supported = typeof window.PublicKeyCredential === "function" &&
    !!(navigator.credentials && navigator.credentials.create && navigator.credentials.get);

  function fromB64url(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIDs(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
  }

  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    pk.excludeCredentials = withIDs(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.allowCredentials = withIDs(pk.allowCredentials);
    return { publicKey: pk };
  }

  function serialize(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (typeof r.getTransports === "function") response.transports = r.getTransports();
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") {
      return "The passkey prompt was closed or timed out. Try again.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This device already has a passkey for your account.";
    }
    if (err && err.name === "SecurityError") {
      return "This browser refused to use passkeys at this address.";
    }
    return (err && err.message) || "The passkey could not be used. Try again.";
  }

  function setUp(el) {
    var form = el.querySelector("form");
    var button = el.querySelector("[data-passkey-start]");
    var status = el.querySelector("[data-passkey-status]");
    var unsupported = el.querySelector("[data-passkey-unsupported]");
    if (!form || !button || !status) return;
    if (!supported) return; // the unsupported message stays
    if (unsupported) unsupported.hidden = true;
    button.hidden = false;
    var register = el.getAttribute("data-passkey") === "register";

    button.addEventListener("click", function () {
      button.disabled = true;
      status.hidden = true;
      var fields = new URLSearchParams(new FormData(form));
      fields.delete("credential");
      fetch(el.getAttribute("data-options-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: fields.toString()
      }).then(function (res) {
        return res.json().then(function (body) {
          if (!res.ok) throw new Error(body.error || "The gateway could not start the passkey prompt.");
          return body;
        });
      }).then(function (options) {
        return register
          ? navigator.credentials.create(creationOptions(options))
          : navigator.credentials.get(requestOptions(options));
      }).then(function (cred) {
        form.elements.credential.value = serialize(cred);
        form.submit();
      }).catch(function (err) {
        status.textContent = explain(err);
        status.hidden = false;
        button.disabled = false;
      });
    });
  }

  var els = document.querySelectorAll("[data-passkey]");
  for (var i = 0; i < els.length; i++) setUp(els[i]);
})();
