// The Node receiver of docs/webhooks.md: verifies each delivery with the standardwebhooks
// package. Run as `node receiver.mjs RECORD` with WFA_WEBHOOK_SECRET set; it prints
// "Listening on PORT" and appends one JSON line per request to RECORD.
import { appendFileSync } from "node:fs";
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WFA_WEBHOOK_SECRET); // whsec_...
const record = process.argv[2];

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8"); // the raw body, not re-serialized
    let event;
    try {
      event = webhook.verify(body, req.headers);
    } catch {
      appendFileSync(record, JSON.stringify({ verified: false }) + "\n");
      res.writeHead(400).end();
      return;
    }
    appendFileSync(record, JSON.stringify({ verified: true, id: req.headers["webhook-id"], event }) + "\n");
    res.writeHead(204).end();
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`Listening on ${server.address().port}`);
});
