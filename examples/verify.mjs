// Verify an API key through a wfa-keys service, from Node 20 (built-in fetch, no packages).
//
//   WFA_SERVICE_URL=http://127.0.0.1:8000 \
//   WFA_SERVICE_KEY_ID=... WFA_SERVICE_KEY_SECRET=... \   (a key with the keys:verify scope)
//   node examples/verify.mjs "$KEY_ID" "$KEY_SECRET" [client-ip]
//   node examples/verify.mjs --token "$ACCESS_TOKEN" [client-ip]
//
// Prints the service's answer ({"valid", "code", "key", "cache_ttl"}) as JSON; exits 0 when
// the key is valid, 1 when it is not, 2 when the service gave no verdict.

const [first, second, clientIp] = process.argv.slice(2);
const service = process.env.WFA_SERVICE_URL;
const callerId = process.env.WFA_SERVICE_KEY_ID;
const callerSecret = process.env.WFA_SERVICE_KEY_SECRET;
if (!service || !callerId || !callerSecret || !first || !second) {
  console.error("usage: node verify.mjs KEY_ID KEY_SECRET [CLIENT_IP] (see the comment on top)");
  process.exit(2);
}

const body = first === "--token" ? { token: second } : { key_id: first, key_secret: second };
if (clientIp) body.client_ip = clientIp;

try {
  const response = await fetch(new URL("/api/v1/keys/verify", service), {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      // The verifying service's own key, as HTTP Basic: Key ID as user, Key Secret as password.
      Authorization: "Basic " + Buffer.from(`${callerId}:${callerSecret}`).toString("base64"),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const answer = await response.json();
  console.log(JSON.stringify(answer));
  if (response.status !== 200) process.exit(2); // our own key refused, or the service failing
  process.exit(answer.valid ? 0 : 1);
} catch (error) {
  console.error(`no verdict: ${error.name}`);
  process.exit(2);
}
