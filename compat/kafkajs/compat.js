// Spool's Kafka compatibility suite, kafkajs part: create a topic, produce
// records with keys and headers (acks=all), consume them back through a
// consumer group, and check that every record arrived exactly once and
// unchanged, in key order, and that the group committed the end offsets.
// The brokers are COMPAT_KAFKA_ADDR (default 127.0.0.1:9092; a cluster's
// addresses separated by commas), topics are created with replication factor
// COMPAT_REPLICATION_FACTOR (default 1). Exits 1 on failure.
'use strict';

const crypto = require('crypto');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

const brokers = (process.env.COMPAT_KAFKA_ADDR || '127.0.0.1:9092').split(',').filter((a) => a !== '');
const replicationFactor = Number(process.env.COMPAT_REPLICATION_FACTOR || '1');
const partitions = 3;
const count = 200;
const suffix = crypto.randomBytes(4).toString('hex');
const topic = `compat-kafkajs-topic-${suffix}`;
const groupId = `compat-kafkajs-group-${suffix}`;

const kafka = new Kafka({ clientId: 'spool-compat-kafkajs', brokers, logLevel: logLevel.WARN });

// The records: keys that repeat, no key, binary bytes, repeated and empty
// headers (kafkajs keeps headers as an object: repeated keys become arrays).
function records(n) {
  const rs = [];
  for (let i = 0; i < n; i++) {
    let value = Buffer.from(`value-${i} ${'x'.repeat(i % 50)}`);
    if (i % 7 === 0) value = Buffer.concat([value, Buffer.from([0x00, 0xff, 0xfe])]);
    const headers = { trace: [Buffer.from(`t-${i}`)], n: [Buffer.from(String(i))] };
    if (i % 3 === 0) headers.trace.push(Buffer.from('again'));
    if (i % 4 === 0) headers.empty = [Buffer.alloc(0)];
    rs.push({ key: i % 10 === 9 ? null : Buffer.from(`key-${i % 5}`), value, headers });
  }
  return rs;
}

// show renders a record's key and headers for comparison and messages.
function show(r) {
  const headers = Object.keys(r.headers || {}).sort().map((k) => {
    const vs = [].concat(r.headers[k]).map((v) => JSON.stringify(Buffer.from(v).toString('latin1')));
    return `${k}=[${vs.join(',')}]`;
  });
  const key = r.key === null ? 'null' : JSON.stringify(r.key.toString('latin1'));
  return `key ${key} headers {${headers.join(' ')}}`;
}

// compare returns what is wrong with got (records received) given sent.
function compare(sent, got) {
  const errs = [];
  const byValue = new Map(sent.map((r) => [r.value.toString('latin1'), r]));
  const seen = new Set();
  for (const g of got) {
    const v = g.value.toString('latin1');
    const s = byValue.get(v);
    if (!s) errs.push(`received a record that was not sent: value ${JSON.stringify(v)}`);
    else if (seen.has(v)) errs.push(`received twice: value ${JSON.stringify(v)}`);
    else if (show(s) !== show(g)) errs.push(`value ${JSON.stringify(v)}: ${show(g)}, sent ${show(s)}`);
    seen.add(v);
  }
  for (const s of sent) {
    const v = s.value.toString('latin1');
    if (!seen.has(v)) errs.push(`never received: value ${JSON.stringify(v)}`);
  }
  // Same key, same partition: each key's records come in the order sent.
  const order = (rs) => {
    const m = new Map();
    for (const r of rs.filter((r) => r.key !== null)) {
      const k = r.key.toString();
      m.set(k, [...(m.get(k) || []), r.value.toString('latin1')]);
    }
    return m;
  };
  const have = order(got);
  for (const [k, vs] of order(sent)) {
    if (JSON.stringify(vs) !== JSON.stringify(have.get(k) || [])) errs.push(`key ${k}: records out of order`);
  }
  return errs;
}

async function produce(sent) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: sent });
  await producer.disconnect();
}

// consume reads n records through the group and returns them.
async function consume(n) {
  const consumer = kafka.consumer({ groupId });
  const got = [];
  let done;
  let crash = null; // a crash means kafkajs gave up retrying: fail at once
  const all = new Promise((resolve) => { done = resolve; });
  consumer.on(consumer.events.CRASH, (e) => { crash = e.payload.error; done(); });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push({ key: message.key, value: message.value, headers: message.headers });
      if (got.length === n) done();
    },
  });
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 45000); });
  await Promise.race([all, timeout]);
  clearTimeout(timer);
  await consumer.disconnect();
  if (crash) throw new Error(`consumer crashed after ${got.length} of ${n} records: ${crash}`);
  if (got.length < n) throw new Error(`received ${got.length} of ${n} records in 45 s`);
  return got;
}

// checkCommitted returns what is wrong with the group's committed offsets:
// each partition's must be its end offset.
async function checkCommitted(admin) {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const errs = [];
  for (const { partition, high } of ends) {
    const c = committed.partitions.find((p) => p.partition === partition);
    if (!c || c.offset !== high) errs.push(`partition ${partition}: committed offset ${c ? c.offset : 'none'}, end offset ${high}`);
  }
  return errs;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor }] });
    const sent = records(count);
    await produce(sent);
    const stored = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
    if (stored !== sent.length) throw new Error(`produced ${sent.length} records, the end offsets add up to ${stored}`);
    const got = await consume(sent.length);
    const errs = [...compare(sent, got), ...(await checkCommitted(admin))];
    if (errs.length > 0) throw new Error(`sent ${sent.length} records, received ${got.length}:\n  ${errs.slice(0, 10).join('\n  ')}`);
    console.log(`kafkajs: produced ${sent.length} records and consumed them with group ${groupId}: ok`);
  } finally {
    await admin.disconnect();
  }
}

setTimeout(() => { console.error('kafkajs: FAIL: timed out after 80 s'); process.exit(1); }, 80000).unref();
main().catch((e) => {
  console.error(`kafkajs: FAIL: ${e.stack || e}`);
  process.exit(1);
});
