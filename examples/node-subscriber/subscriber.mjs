// An outside service that reads one organisation's Alongside events, durably.
//
//   node subscriber.mjs NATS_URL CREDENTIALS_FILE ORG NAME COUNT
//
// It knows Alongside only by its published contract (docs/subscribers.md): the
// organisation's own stream EVENTS-<org>, the inbox prefix its credential allows, and
// the event envelope. Its credential (`alongside orgs credentials ORG --kind subscriber
// --name NAME`) reads through the durable consumer NAME that the operator made with it,
// and may make none of its own. It prints COUNT events as JSON lines and acknowledges
// each, so the next run goes on from there.
import fs from 'node:fs';
import { connect, credsAuthenticator } from 'nats';

const [url, credentials, org, name, count] = process.argv.slice(2);
const nc = await connect({
  servers: url,
  authenticator: credsAuthenticator(fs.readFileSync(credentials)),
  // Replies reach this credential under its own prefix only.
  inboxPrefix: `_INBOX_org.${org}.${name}`,
});
const stream = `EVENTS-${org}`;
// The credential may fetch from its consumer and ack, nothing more: not even ask for the
// consumer's information, which `consumers.get` does first. So fetch by name, and skip the
// client's check of the JetStream API.
const js = nc.jetstream({ checkAPI: false });

let left = Number(count);
while (left > 0) {
  const batch = js.fetch(stream, name, { batch: left, expires: 5000 });
  for await (const msg of batch) {
    const event = msg.json();
    // An event's type is the last token of its subject; anything else is not ours.
    if (event.specversion !== '1.0' || msg.subject.split('.').pop() !== event.type) {
      console.error(`skipped ${msg.subject}: not an Alongside event`);
    } else {
      console.log(JSON.stringify({ org: event.org, type: event.type, id: event.id, data: event.data }));
    }
    msg.ack();
    left -= 1;
  }
}
await nc.flush();
await nc.drain();
