#!/usr/bin/env node
// nodes7_client.js: writes a fixed set of items to an S7 PLC with nodes7 (an S7 client written
// independently of this project), reads them back, and prints one JSON line with what it read.
//
//   node nodes7_client.js HOST PORT
//
// Exit status: 0 when every write was acknowledged and every value read back equals the value
// written; 1 on a communication error, bad quality or mismatch; 2 on bad usage; 3 when the whole
// exchange did not finish within the deadline. Diagnostics (including nodes7's own log) go to
// stderr, so stdout holds only the JSON line.
'use strict';

const util = require('util');

// nodes7 logs with console.log; keep stdout for the result line.
console.log = (...args) => process.stderr.write(util.format(...args) + '\n');

const NodeS7 = require('nodes7');

const DEADLINE_MS = 20000;

// Item name -> [nodes7 address, value written]. The values are not zero, except one bit, so a
// read of untouched (zeroed) memory cannot pass. The REAL is exactly representable in 32 bits.
// plcsim must serve DB1 with at least 40 bytes (run_interop.sh starts it with --db 1:256).
const ITEMS = {
  db_int: ['DB1,INT0', -12345],
  db_real: ['DB1,REAL2', -1234.5],
  db_dint: ['DB1,DINT6', -123456789],
  db_bit0: ['DB1,X10.0', true],
  db_bit3: ['DB1,X10.3', true],
  db_bit5: ['DB1,X10.5', false],
  db_byte: ['DB1,BYTE11', 0xa5],
  db_word: ['DB1,WORD12', 0xbeef],
  db_ints: ['DB1,INT14.3', [1, -2, 300]],
  db_chars: ['DB1,CHAR20.5', 'S7sim'],
  db_string: ['DB1,S26.10', 'interop'],
  m_bit1: ['M0.1', true],
  m_bit7: ['M0.7', true],
  m_byte: ['MB1', 0x3c],
  m_int: ['MI2', -300],
  m_real: ['MR4', 0.15625],
  i_byte: ['IB0', 0x81],
  i_bit: ['I1.2', true],
  q_byte: ['QB0', 0x42],
  q_bit: ['Q1.0', true],
};

function fail(code, message) {
  process.stderr.write('nodes7_client: ' + message + '\n');
  process.exit(code);
}

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
  fail(2, 'usage: node nodes7_client.js HOST PORT');
}

// One timer bounds connect, write, read and disconnect together; nodes7 retries and reconnects
// on its own, which would otherwise turn a broken server into a hang.
setTimeout(() => fail(3, 'no result within ' + DEADLINE_MS + ' ms'), DEADLINE_MS).unref();

const names = Object.keys(ITEMS);
const conn = new NodeS7({ silent: false });

// Rack 0, slot 1 (S7-1200/1500 style), as the project's own client connects.
conn.initiateConnection({ host, port, rack: 0, slot: 1, timeout: 5000 }, onConnected);

function onConnected(err) {
  if (err !== undefined) fail(1, 'connect to ' + host + ':' + port + ' failed: ' + (err.code || err));
  conn.setTranslationCB((name) => ITEMS[name][0]);
  const busy = conn.writeItems(names, names.map((n) => ITEMS[n][1]), onWritten);
  if (busy !== 0) fail(1, 'writeItems refused (another write in progress: ' + busy + ')');
}

function onWritten(anythingBad) {
  if (anythingBad) fail(1, 'a write was not acknowledged with success (see nodes7 log above)');
  conn.addItems(names);
  conn.readAllItems(onRead);
}

function onRead(anythingBad, values) {
  if (anythingBad) fail(1, 'a read came back with bad quality: ' + JSON.stringify(values));
  const mismatches = names.filter((n) => !util.isDeepStrictEqual(values[n], ITEMS[n][1]));
  process.stdout.write(JSON.stringify({ host, port, values }) + '\n');
  if (mismatches.length > 0) {
    const detail = mismatches.map((n) => `${n} (${ITEMS[n][0]}): wrote ${JSON.stringify(ITEMS[n][1])}, ` +
                                         `read ${JSON.stringify(values[n])}`);
    fail(1, 'read back differs from written: ' + detail.join('; '));
  }
  // An orderly close, so the capture ends with FINs rather than an abort.
  conn.dropConnection(() => process.exit(0));
}
