// Gatehouse's WebAuthn buttons (security keys, passkeys): the one script it serves, from its own
// origin (the CSP allows no inline script and no other origin). A button's container names the
// ceremony (create or get), where to fetch the options and where to post the answer; the answer
// to that post is { location } to go to, or { error, message } to show.

const fromB64url = (text) => {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
};
const toB64url = (buffer) => {
  let raw = '';
  for (const byte of new Uint8Array(buffer)) raw += String.fromCharCode(byte);
  return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

/** The options JSON (base64url strings) as the browser's API wants them (ArrayBuffers). */
function publicKeyOf(ceremony, options) {
  const key = { ...options, challenge: fromB64url(options.challenge) };
  const ids = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  if (ceremony === 'create') {
    key.user = { ...options.user, id: fromB64url(options.user.id) };
    key.excludeCredentials = ids(options.excludeCredentials);
  } else {
    key.allowCredentials = ids(options.allowCredentials);
  }
  return key;
}

/** The credential as JSON (base64url strings), as @simplewebauthn/server reads it. */
function credentialJson(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
  };
}

async function post(url, csrf, body) {
  const res = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.message || 'That did not work. Try again.');
  return json;
}

async function run(box) {
  const { webauthn: ceremony, options: optionsUrl, verify, csrf } = box.dataset;
  const fields = {};
  for (const [name, value] of Object.entries(box.dataset))
    if (name.startsWith('field')) fields[name.slice(5).toLowerCase()] = value;
  const nameInput = document.getElementById('key-name');
  if (nameInput) fields.name = nameInput.value;
  const options = await post(optionsUrl, csrf, fields);
  const publicKey = publicKeyOf(ceremony, options);
  const credential =
    ceremony === 'create'
      ? await navigator.credentials.create({ publicKey })
      : await navigator.credentials.get({ publicKey });
  const answer = await post(verify, csrf, { ...fields, credential: credentialJson(credential) });
  window.location.assign(answer.location || '/');
}

for (const box of document.querySelectorAll('[data-webauthn]')) {
  const button = box.querySelector('button');
  const error = box.querySelector('.error');
  if (!window.PublicKeyCredential) {
    button.disabled = true;
    error.textContent = 'This browser does not support security keys or passkeys.';
    error.hidden = false;
    continue;
  }
  button.addEventListener('click', () => {
    button.disabled = true;
    error.hidden = true;
    run(box).catch((err) => {
      error.textContent =
        err?.name === 'NotAllowedError'
          ? 'Cancelled, or no matching security key or passkey.'
          : err?.message || 'That did not work. Try again.';
      error.hidden = false;
      button.disabled = false;
    });
  });
}
