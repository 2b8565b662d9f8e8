// An outside service that reads one organisation's Alongside events, durably.
//
//   node subscriber.mjs NATS_URL CREDENTIALS_FILE ORG COUNT
//
// It knows Alongside only by its published contract (docs/subscribers.md): the
// organisation's own stream EVENTS-<org>, the inbox prefix its credential allows, and
// the event envelope. It makes (or resumes) its durable consumer "node-feed", prints
// COUNT events as JSON lines and acknowledges each, so the next run goes on from there.
import fs from 'node:fs';
import { AckPolicy, DeliverPolicy, connect, credsAuthenticator } from 'nats';

const [url, credentials, org, count] = process.argv.slice(2);
const nc = await connect({
  servers: url,
  authenticator: credsAuthenticator(fs.readFileSync(credentials)),
  // Replies reach an organisation's credential under this prefix only.
  inboxPrefix: `_INBOX_org.${org}`,
});
const stream = `EVENTS-${org}`;
const durable = 'node-feed';
// The credential may not ask for account-wide JetStream information: skip that check.
const jsm = await nc.jetstreamManager({ checkAPI: false });
await jsm.consumers.add(stream, {
  durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
});
const consumer = await nc.jetstream({ checkAPI: false }).consumers.get(stream, durable);

let left = Number(count);
while (left > 0) {
  const batch = await consumer.fetch({ max_messages: left, expires: 5000 });
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
