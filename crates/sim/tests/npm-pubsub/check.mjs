// The npm Pub/Sub API client (salesforce-pubsub-api-client, written by nobody here) against
// the Salesforce simulator, over TLS with the test CA. Run by crates/sim/tests/sim/npm_client.rs,
// which publishes the events beforehand and checks the report this prints.
//
// Input: the JSON in CHECK_CONFIG. Output: one JSON line with what the client saw; exit 0 when
// every step completed, 1 with the failure on stderr otherwise.
import fs from 'node:fs';
import grpc from '@grpc/grpc-js';
import PubSubApiClient from 'salesforce-pubsub-api-client';

const config = JSON.parse(process.env.CHECK_CONFIG);

// The client trusts only the CA bundle it ships; the test CA is added by wrapping the one
// function it builds its channel credentials with (the same @grpc/grpc-js copy, deduplicated).
const testCa = fs.readFileSync(config.ca);
const createSsl = grpc.credentials.createSsl;
grpc.credentials.createSsl = (_roots, key, chain, options) => createSsl(testCa, key, chain, options);

const quiet = { debug() {}, info() {}, warn: (...a) => console.error(...a), error: (...a) => console.error(...a) };
const fail = (message) => {
  console.error(`npm client check failed: ${message}`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), config.timeoutMs).unref();

async function connected() {
  const client = new PubSubApiClient(
    {
      authType: 'user-supplied',
      accessToken: config.accessToken,
      instanceUrl: config.instanceUrl,
      organizationId: config.organizationId,
      pubSubEndpoint: config.endpoint,
    },
    quiet,
  );
  await client.connect();
  return client;
}

// Subscribes with `start(callback)` and resolves with the events once `until(events, type)`
// says so; an error callback rejects.
function collect(start, until) {
  return new Promise((resolve, reject) => {
    const events = [];
    start((info, type, data) => {
      if (type === 'event') events.push(data);
      if (type === 'error') reject(new Error(`subscription error: ${data?.message ?? data}`));
      if (until(events, type, info)) resolve({ events, info });
    });
  });
}
const decoded = (e) => ({ replayId: e.replayId, payload: e.payload });
const report = {};

// Publish: the client reads the topic's schema and encodes the event itself.
const publisher = await connected();
const published = await publisher.publish(config.topic, {
  CreatedDate: Date.now(),
  CreatedById: config.userId,
  [config.eventTypeField]: { string: 'Interaction' },
  [config.payloadField]: { string: '{"published":"by the npm client"}' },
});
report.published = published.replayId;

// Subscribe from the earliest event to the platform event and decode every one.
const all = await collect(
  (cb) => publisher.subscribeFromEarliestEvent(config.topic, cb, config.topicEvents),
  (_events, type) => type === 'lastEvent',
);
report.events = all.events.map(decoded);

// Replay: a fresh client (one client reuses its stream per topic) resumes after a replay id.
const replayer = await connected();
const replayFrom = report.events[config.replayFromIndex].replayId;
const replayed = await collect(
  (cb) => replayer.subscribeFromReplayId(config.topic, cb, 2, replayFrom),
  (_events, type) => type === 'lastEvent',
);
report.replayed = replayed.events.map((e) => e.replayId);

// Flow control: an endless subscription gets batches of 100 and asks again after each; a
// bounded one gets exactly what it asks for, then more when it asks for more.
const bulk = await connected();
const endless = await collect(
  (cb) => bulk.subscribeFromEarliestEvent(config.bulkTopic, cb, null),
  (events) => events.length === config.bulkEvents,
);
report.bulk = endless.events.map((e) => e.replayId);
const bounded = await connected();
let asked = false;
const batches = await collect(
  (cb) => bounded.subscribeFromEarliestEvent(config.bulkTopic, cb, 10),
  (events, type) => {
    if (type !== 'lastEvent') return false;
    if (!asked) {
      asked = true;
      bounded.requestAdditionalEvents(config.bulkTopic, 5);
      return false;
    }
    return true;
  },
);
report.bounded = batches.events.length;

// Keep-alives on a topic without events: the client reads latest_replay_id from each.
const idle = await connected();
const kept = await collect(
  (cb) => idle.subscribe(config.idleTopic, cb, 1),
  (_events, type) => type === 'grpcKeepAlive',
);
report.keepAliveReplayId = kept.info.lastReplayId;

// Change data capture: the client expands the bitmaps of the change event header.
const changes = await connected();
const change = await collect(
  (cb) => changes.subscribeFromEarliestEvent(config.cdcTopic, cb, 1),
  (_events, type) => type === 'lastEvent',
);
report.change = change.events.map(decoded)[0];

console.log(JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
// The client's close() leaves open Subscribe streams running; the check is done.
process.exit(0);
