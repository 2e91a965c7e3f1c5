// SPDX-License-Identifier: MIT
//
// The browser side of tern's browser suite. The driver (driver.mjs) loads index.html once per
// case, then evaluates `T.run(caseName, params)`, which answers a JSON string
// {ok, detail | error, ms}. A case joins the signaling room `params.room` on tern-signal
// (signaling-protocol.md), connects an RTCPeerConnection to the peer found there (a native
// tern peer, or another browser), offering or answering as `params.role` says, and then checks
// what the case is about.
//
// The native peer is tern-echo (echoes every message on every channel) or browser_peer (which
// echoes too, and obeys commands on its "ctl" channel: see browser_peer.c). Either way a first
// channel is opened with the connection: the browser's "ctl" when the browser offers, the
// native peer's own when it offers; every case then opens its channels over the established
// association, so the same case runs in both roles.
'use strict';

const T = (() => {
    const enc = new TextEncoder();
    const dec = new TextDecoder();

    function log(...args) {
        console.log('[harness]', ...args);
    }

    function sleep(ms) {
        return new Promise((r) => setTimeout(r, ms));
    }

    function deadline(promise, ms, what) {
        let timer;
        return Promise.race([
            promise,
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`timeout (${ms} ms): ${what}`)), ms);
            }),
        ]).finally(() => clearTimeout(timer));
    }

    function check(cond, what) {
        if (!cond)
            throw new Error(`check failed: ${what}`);
    }

    function randomBytes(n) {
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i += 65536)
            crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
        return b;
    }

    function sameBytes(a, b) {
        if (!(a instanceof ArrayBuffer))
            return false;
        const x = new Uint8Array(a);
        if (x.length !== b.length)
            return false;
        for (let i = 0; i < x.length; i++)
            if (x[i] !== b[i])
                return false;
        return true;
    }

    function describe(v) {
        if (typeof v === 'string')
            return `text(${v.length}) ${JSON.stringify(v.slice(0, 40))}`;
        if (v instanceof ArrayBuffer)
            return `binary(${v.byteLength})`;
        return String(v);
    }

    async function sha256Hex(bytes) {
        const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
        return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
    }

    // A queue of things that arrive (messages, events), with awaiting readers.
    class Inbox {
        constructor() {
            this.items = [];
            this.waiters = [];
        }

        push(item) {
            const i = this.waiters.findIndex((w) => w.pred(item));
            if (i >= 0) {
                const [w] = this.waiters.splice(i, 1);
                w.resolve(item);
            } else {
                this.items.push(item);
            }
        }

        next(pred = () => true, ms = 10000, what = 'a message') {
            const i = this.items.findIndex(pred);
            if (i >= 0)
                return Promise.resolve(this.items.splice(i, 1)[0]);
            let w;
            const p = new Promise((resolve) => {
                w = { pred, resolve };
                this.waiters.push(w);
            });
            return deadline(p, ms, what).catch((e) => {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                throw e;
            });
        }
    }

    // Messages of one channel, in arrival order. Attach before the first message can arrive
    // (synchronously in ondatachannel or right after createDataChannel).
    function listen(dc) {
        dc.binaryType = 'arraybuffer';
        const box = new Inbox();
        dc.addEventListener('message', (e) => box.push(e.data));
        dc.inbox = box;
        dc.closed = new Promise((resolve) => dc.addEventListener('close', resolve));
        return dc;
    }

    function opened(dc, ms = 10000) {
        if (dc.readyState === 'open')
            return Promise.resolve(dc);
        return deadline(new Promise((resolve, reject) => {
            dc.addEventListener('open', () => resolve(dc));
            dc.addEventListener('close', () => reject(new Error(`channel ${dc.label} closed`)));
        }), ms, `channel "${dc.label}" to open`);
    }

    // The signaling client of the page: one WebSocket to tern-signal's room.
    class Signal {
        constructor(url) {
            this.url = url;
            this.inbox = new Inbox();
            this.ws = new WebSocket(url);
            this.ws.onmessage = (e) => {
                const m = JSON.parse(e.data);
                if (m.type === 'candidate' && this.onCandidate)
                    this.onCandidate(m);
                else
                    this.inbox.push(m);
            };
            this.ws.onclose = () => this.inbox.push({ type: '_closed' });
        }

        opened() {
            return deadline(new Promise((resolve, reject) => {
                this.ws.onopen = resolve;
                this.ws.onerror = () => reject(new Error(`signaling: cannot open ${this.url}`));
            }), 5000, 'signaling WebSocket');
        }

        send(m) {
            this.ws.send(JSON.stringify(m));
        }

        next(type, ms, from) {
            return this.inbox.next((m) => m.type === type && (!from || m.from === from), ms,
                                   `signaling "${type}"`);
        }

        close() {
            this.ws.close();
        }
    }

    const pcConfig = { iceServers: [] };

    // Join the room, find the peer, and connect to it offering or answering. Returns once the
    // first channel is open.
    async function connect(p) {
        const sig = new Signal(`${p.signal}/ws/${encodeURIComponent(p.room)}`);
        await sig.opened();
        const welcome = await sig.next('welcome', 5000);
        const peer = welcome.peers.length ? welcome.peers[0]
                                          : (await sig.next('join', p.joinTimeout ?? 15000)).id;
        log(`room ${p.room}: I am ${welcome.id}, peer ${peer}, I ${p.role}`);
        const pc = new RTCPeerConnection(pcConfig);
        const c = { sig, pc, peer, channels: new Inbox(), remote: [] };
        // Candidates may arrive before the remote description: hold them until it is set.
        let pending = [];
        const addCandidate = (m) => {
            const init = { candidate: m.candidate, sdpMid: m.sdpMid ?? '0',
                           sdpMLineIndex: m.sdpMLineIndex ?? 0 };
            c.remote.push(m.candidate);
            pc.addIceCandidate(init).catch((e) => log(`addIceCandidate(${m.candidate}): ${e}`));
        };
        sig.onCandidate = (m) => {
            if (m.from !== peer)
                return;
            if (pending)
                pending.push(m);
            else
                addCandidate(m);
        };
        const flush = () => {
            const list = pending;
            pending = null;
            list.forEach(addCandidate);
        };
        c.local = [];
        pc.onicecandidate = (e) => {
            const cand = e.candidate;
            if (cand)
                c.local.push(cand.candidate);
            sig.send({ type: 'candidate', to: peer, candidate: cand ? cand.candidate : '',
                       sdpMid: cand ? cand.sdpMid : '0', sdpMLineIndex: cand ? cand.sdpMLineIndex
                                                                                : 0 });
        };
        pc.ondatachannel = (e) => c.channels.push(listen(e.channel));
        let first;
        if (p.role === 'offer') {
            first = listen(pc.createDataChannel(p.firstLabel ?? 'ctl'));
            await pc.setLocalDescription(await pc.createOffer());
            sig.send({ type: 'offer', to: peer, sdp: pc.localDescription.sdp });
            const answer = await sig.next('answer', 10000, peer);
            await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
            flush();
        } else {
            const offer = await sig.next('offer', 10000, peer);
            await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
            flush();
            await pc.setLocalDescription(await pc.createAnswer());
            sig.send({ type: 'answer', to: peer, sdp: pc.localDescription.sdp });
            first = await c.channels.next(() => true, 10000, 'the peer\'s first channel');
        }
        await opened(first, 10000);
        c.first = first;
        log(`connected: ${pc.connectionState}, first channel "${first.label}"`);
        return c;
    }

    // Echo helpers (tern-echo and browser_peer echo every message on every non-ctl channel).
    async function echo(dc, payload, ms = 10000) {
        dc.send(payload);
        const back = await dc.inbox.next(() => true, ms, `echo on "${dc.label}"`);
        if (typeof payload === 'string')
            check(back === payload, `text echo on "${dc.label}": sent ${describe(payload)}, ` +
                                        `got ${describe(back)}`);
        else
            check(sameBytes(back, payload), `binary echo on "${dc.label}": sent ` +
                                                `binary(${payload.length}), got ${describe(back)}`);
    }

    async function channel(c, label, init) {
        const dc = listen(c.pc.createDataChannel(label, init));
        return opened(dc);
    }

    // Commands to browser_peer over the "ctl" channel: "N verb args" -> "N ok ..." / "N err ...".
    let ctlSeq = 0;
    async function ctl(c, command, ms = 10000) {
        const id = String(++ctlSeq);
        c.first.send(`${id} ${command}`);
        const reply = await c.first.inbox.next(
            (m) => typeof m === 'string' && m.startsWith(`${id} `), ms, `ctl reply to ${command}`);
        const rest = reply.slice(id.length + 1);
        if (!rest.startsWith('ok'))
            throw new Error(`ctl "${command}": ${rest}`);
        return rest.slice(2).trim();
    }

    function parseInfo(text) {
        const o = {};
        for (const kv of text.split(' ')) {
            const i = kv.indexOf('=');
            if (i > 0)
                o[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1));
        }
        return o;
    }

    async function waitFor(pred, ms, what, step = 50) {
        const end = Date.now() + ms;
        for (;;) {
            const v = await pred();
            if (v)
                return v;
            if (Date.now() > end)
                throw new Error(`timeout (${ms} ms): ${what}`);
            await sleep(step);
        }
    }

    const cases = {};

    // ---- echo cases: the native side is tern-echo ----

    cases.text = async (c) => {
        const dc = await channel(c, 'text');
        await echo(dc, 'hello, tern');
        await echo(dc, 'UTF-8: h\u00e9llo \u2713 \u{1F426} \u65e5\u672c');
        return 'two text messages echoed';
    };

    cases.binary = async (c) => {
        const dc = await channel(c, 'binary');
        await echo(dc, Uint8Array.from({ length: 256 }, (_, i) => i));
        await echo(dc, randomBytes(1000));
        return 'two binary messages echoed';
    };

    const SIZES = { 'size-0': 0, 'size-1': 1, 'size-16k': 16384, 'size-64k': 65536,
                    'size-256k': 262144 };
    for (const [name, size] of Object.entries(SIZES)) {
        cases[name] = async (c) => {
            const max = c.pc.sctp?.maxMessageSize;
            check(!max || max >= size, `the peer's max-message-size ${max} < ${size}`);
            const dc = await channel(c, name);
            await echo(dc, randomBytes(size), 20000);
            // The same size as text (an empty string has its own PPID, RFC 8831 §8).
            await echo(dc, 'x'.repeat(size), 20000);
            return `${size} bytes echoed as binary and as text (max-message-size ${max})`;
        };
    }

    cases['ordered-1000'] = async (c) => {
        const dc = await channel(c, 'ordered');
        for (let i = 0; i < 1000; i++)
            dc.send(`message ${i}`);
        for (let i = 0; i < 1000; i++) {
            const m = await dc.inbox.next(() => true, 10000, `echo ${i} of 1000`);
            check(m === `message ${i}`, `echo ${i} in order: got ${describe(m)}`);
        }
        return '1000 messages echoed in order';
    };

    cases.unordered = async (c) => {
        const dc = await channel(c, 'unordered', { ordered: false });
        check(dc.ordered === false, 'dc.ordered is false');
        const n = 500;
        for (let i = 0; i < n; i++)
            dc.send(`u${i}`);
        const seen = new Set();
        let outOfOrder = 0, last = -1;
        while (seen.size < n) {
            const m = await dc.inbox.next(() => true, 10000, `echo ${seen.size + 1} of ${n}`);
            const i = Number(m.slice(1));
            check(m === `u${i}` && i >= 0 && i < n && !seen.has(i), `a fresh echo: ${describe(m)}`);
            seen.add(i);
            outOfOrder += i < last;
            last = i;
        }
        return `${n} messages echoed on an unordered channel (${outOfOrder} out of order)`;
    };

    // Collect up to n messages, until all came or `quietMs` pass without one.
    async function collect(dc, n, quietMs) {
        const got = [];
        while (got.length < n) {
            try {
                got.push(await dc.inbox.next(() => true, quietMs, 'more'));
            } catch {
                break;
            }
        }
        return got;
    }

    function lossReport(sent, got) {
        const set = new Set(got);
        const lost = sent.filter((m) => !set.has(m));
        return lost.length ? `${lost.length} of ${sent.length} lost (${lost.slice(0, 6).join(' ')}` +
                             `${lost.length > 6 ? ' ...' : ''})`
                           : `none of ${sent.length} lost`;
    }

    // A partially reliable channel may lose messages, even on loopback (W3C and RFC 8831
    // promise nothing more): the case checks the channel's kind and that messages flow both
    // ways, and reports losses in its detail line rather than failing on them.
    cases['max-retransmits-0'] = async (c) => {
        const dc = await channel(c, 'rtx0', { maxRetransmits: 0 });
        check(dc.maxRetransmits === 0 && dc.maxPacketLifeTime === null,
              'dc.maxRetransmits is 0 and maxPacketLifeTime null');
        const sent = Array.from({ length: 200 }, (_, i) => `r${i}`);
        sent.forEach((m) => dc.send(m));
        const got = await collect(dc, sent.length, 2000);
        check(got.every((m) => sent.includes(m)), 'only messages that were sent came back');
        check(got.length >= sent.length / 2, `most echoes came back: ${lossReport(sent, got)}`);
        return `maxRetransmits=0 channel: ${got.length} echoes, ${lossReport(sent, got)}`;
    };

    cases['several-channels'] = async (c) => {
        const inits = [
            {}, { ordered: false }, { maxRetransmits: 0 }, { maxPacketLifeTime: 500 },
            { protocol: 'tern-test' }, { ordered: false, maxRetransmits: 2 }, {}, {},
        ];
        const dcs = inits.map((init, i) => listen(c.pc.createDataChannel(`multi-${i}`, init)));
        await Promise.all(dcs.map((dc) => opened(dc)));
        const ids = new Set(dcs.map((dc) => dc.id));
        check(ids.size === dcs.length, `distinct stream ids: ${[...ids]}`);
        // Interleave sends across every channel, then check each channel's echoes.
        for (let k = 0; k < 20; k++)
            dcs.forEach((dc) => dc.send(`${dc.label}/${k}`));
        const losses = [];
        await Promise.all(dcs.map(async (dc) => {
            const want = Array.from({ length: 20 }, (_, k) => `${dc.label}/${k}`);
            const reliable = dc.maxRetransmits === null && dc.maxPacketLifeTime === null;
            const got = await collect(dc, want.length, reliable ? 10000 : 2000);
            check(got.every((m) => want.includes(m)), `only sent messages on ${dc.label}`);
            if (reliable) {
                check(got.length === want.length, `every echo on ${dc.label} (${got.length})`);
                if (dc.ordered)
                    check(got.join() === want.join(), `echoes in order on ${dc.label}`);
            } else {
                check(got.length >= want.length / 2,
                      `most echoes on ${dc.label}: ${lossReport(want, got)}`);
                if (got.length < want.length)
                    losses.push(`${dc.label}: ${lossReport(want, got)}`);
            }
        }));
        return `${dcs.length} channels at once, ids ${[...ids].join(',')}` +
               (losses.length ? `; partially reliable losses: ${losses.join('; ')}` : '');
    };

    // ---- cases against browser_peer (commands on "ctl") ----

    // The native side parsed each DCEP OPEN as the browser meant it.
    cases['channel-properties'] = async (c) => {
        const inits = {
            'p-reliable': {},
            'p-unordered': { ordered: false },
            'p-rtx0': { maxRetransmits: 0 },
            'p-rtx3': { maxRetransmits: 3, ordered: false },
            'p-life': { maxPacketLifeTime: 250 },
            'p-proto': { protocol: 'chat.tern.example' },
            'p-\u00e9t\u00e9': {},
        };
        const want = (init) => ({
            ordered: init.ordered === false ? '0' : '1',
            rtx: String(init.maxRetransmits ?? -1),
            life: String(init.maxPacketLifeTime ?? -1),
            proto: init.protocol ?? '',
        });
        for (const [label, init] of Object.entries(inits)) {
            const dc = await channel(c, label, init);
            const info = parseInfo(await ctl(c, `info ${encodeURIComponent(label)}`));
            const w = want(init);
            for (const k of Object.keys(w))
                check(info[k] === w[k], `${label}: native ${k}=${info[k]}, want ${w[k]}`);
            check(info.id === String(dc.id), `${label}: native id ${info.id}, browser ${dc.id}`);
            await echo(dc, `on ${label}`);
        }
        return `${Object.keys(inits).length} channels, properties seen alike on both sides`;
    };

    // A channel negotiated out of band (no DCEP) with a fixed id, created on both sides.
    cases.negotiated = async (c) => {
        await ctl(c, 'open neg-a neg=7');
        const a = listen(c.pc.createDataChannel('neg-a', { negotiated: true, id: 7 }));
        await opened(a);
        check(a.id === 7 && a.negotiated, 'browser channel has id 7');
        await echo(a, 'over a negotiated channel');
        await echo(a, randomBytes(3000));
        // The native side sends first on a second one (it must not wait for a DCEP ACK).
        const b = listen(c.pc.createDataChannel('neg-b', { negotiated: true, id: 12,
                                                           ordered: false }));
        await opened(b);
        await ctl(c, 'open neg-b neg=12 ordered=0');
        await ctl(c, 'send neg-b native-first');
        const m = await b.inbox.next(() => true, 5000, 'the native side\'s first message');
        check(m === 'native-first', `got ${describe(m)}`);
        const info = parseInfo(await ctl(c, 'info neg-b'));
        check(info.id === '12' && info.neg === '1' && info.ordered === '0',
              `native view of neg-b: ${JSON.stringify(info)}`);
        return 'negotiated ids 7 and 12, messages both ways';
    };

    // The native side opens channels (DCEP from tern), several at once.
    cases['native-opens-channels'] = async (c) => {
        const specs = [
            ['n-0', ''], ['n-1', 'ordered=0'], ['n-2', 'rtx=0'], ['n-3', 'life=300'],
            ['n-4', 'proto=tern-proto'], ['n-5', ''],
        ];
        await ctl(c, `open-many ${specs.map(([l, o]) => `${l}${o ? ',' + o : ''}`).join(' ')}`);
        const got = new Map();
        while (got.size < specs.length) {
            const dc = await c.channels.next(() => true, 10000,
                                             `channel ${got.size + 1} of ${specs.length}`);
            got.set(dc.label, dc);
        }
        for (const [label, opts] of specs) {
            const dc = got.get(label);
            check(dc, `channel ${label} arrived`);
            await opened(dc);
            check(dc.ordered === !opts.includes('ordered=0'), `${label} ordered`);
            check(dc.maxRetransmits === (opts.includes('rtx=0') ? 0 : null),
                  `${label} maxRetransmits ${dc.maxRetransmits}`);
            check(dc.maxPacketLifeTime === (opts.includes('life=300') ? 300 : null),
                  `${label} maxPacketLifeTime ${dc.maxPacketLifeTime}`);
            check(dc.protocol === (opts.includes('proto=') ? 'tern-proto' : ''),
                  `${label} protocol "${dc.protocol}"`);
            await echo(dc, `to ${label}`);
        }
        return `${specs.length} channels opened by the native side`;
    };

    cases['close-channel-browser'] = async (c) => {
        const dc = await channel(c, 'closing-b');
        await echo(dc, 'before close');
        dc.close();
        await deadline(dc.closed, 10000, 'the browser\'s close event');
        await waitFor(async () => parseInfo(await ctl(c, 'info closing-b')).state === 'closed',
                      10000, 'the native side to see the channel closed');
        // The association goes on: another channel works.
        const again = await channel(c, 'after-close');
        await echo(again, 'still connected');
        return 'closed by the browser, seen closed on both sides';
    };

    cases['close-channel-native'] = async (c) => {
        const dc = await channel(c, 'closing-n');
        await echo(dc, 'before close');
        await ctl(c, 'close closing-n');
        await deadline(dc.closed, 10000, 'the browser\'s close event');
        check(dc.readyState === 'closed', `readyState ${dc.readyState}`);
        await waitFor(async () => parseInfo(await ctl(c, 'info closing-n')).state === 'closed',
                      10000, 'the native side to see the channel closed');
        const again = await channel(c, 'after-close');
        await echo(again, 'still connected');
        return 'closed by the native side, seen closed on both sides';
    };

    // The browser closes its peer connection; the driver then checks that browser_peer saw
    // its channels close (it prints "event close LABEL" lines).
    cases['close-peer-browser'] = async (c) => {
        const dc = await channel(c, 'pc-close-b');
        await echo(dc, 'before close');
        // No `bye`: the native side must notice through DTLS and SCTP, not through signaling
        // (its signaling client frees the pc on `bye` without reporting the channels).
        c.pc.close();
        check(c.pc.connectionState === 'closed', `connectionState ${c.pc.connectionState}`);
        await sleep(200);
        return 'closed the peer connection';
    };

    cases['close-peer-native'] = async (c) => {
        const dc = await channel(c, 'pc-close-n');
        await echo(dc, 'before close');
        await ctl(c, 'close-pc');
        await deadline(Promise.all([dc.closed, c.first.closed]), 15000,
                       'every channel to close after the native side closed');
        return `channels closed; connectionState ${c.pc.connectionState}`;
    };

    // With mDNS on (a browser without the media permission, on a non-loopback address), the
    // browser's host candidates are "<uuid>.local" names. tern connects whether or not it
    // resolves them: the browser's checks reach it and make a peer-reflexive candidate.
    cases.mdns = async (c) => {
        const dc = await channel(c, 'mdns');
        await echo(dc, 'through an mDNS host candidate');
        await echo(dc, randomBytes(5000));
        const hosts = c.local.filter((x) => / typ host/.test(x));
        check(hosts.length && hosts.every((x) => /\.local /.test(x)),
              `every host candidate of the browser is an mDNS name: ${hosts.join(' | ')}`);
        // The browser's selected pair: the transport's, or else the nominated succeeded one.
        let pair = '';
        const stats = await c.pc.getStats();
        let sel = null;
        stats.forEach((r) => {
            if (r.type === 'transport' && r.selectedCandidatePairId)
                sel = stats.get(r.selectedCandidatePairId);
        });
        stats.forEach((r) => {
            if (!sel && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded')
                sel = r;
        });
        if (sel) {
            const l = stats.get(sel.localCandidateId), rm = stats.get(sel.remoteCandidateId);
            pair = `${l?.candidateType} ${l?.address ?? ''} -> ${rm?.candidateType} ` +
                   `${rm?.address ?? ''}:${rm?.port ?? ''}`;
        }
        // tern's own view of the pair (browser_peer): prflx until it has resolved the name
        // (the browser's checks arrive first), then host: the resolved candidate upgrades the
        // peer-reflexive one (RFC 8445 §7.3.1.3). Firefox answers mDNS queries in about 250 ms.
        let tern;
        const t0 = performance.now();
        await waitFor(async () => (tern = parseInfo(await ctl(c, 'pair'))).rtype === 'host', 5000,
                      'tern to resolve the .local name').catch(() => {});
        const waited = Math.round(performance.now() - t0);
        check(tern.rtype === 'host', `tern resolved the browser's .local name within 5 s: its ` +
                                     `pair is ${tern.ltype} -> ${tern.rtype} ${tern.remote}`);
        return `browser: ${pair || '?'}; tern (after ${waited} ms): ${tern.ltype} ${tern.local} ` +
               `-> ${tern.rtype} ${tern.remote}; browser host candidates: ` +
               hosts.map((x) => x.split(' ')[4]).join(', ');
    };

    // ---- browser to browser through tern-signal (smoke test of the harness itself) ----

    cases['browser-smoke'] = async (c) => {
        // Both pages run this: the offerer sends, the answerer echoes.
        if (c.first.label !== 'smoke')
            throw new Error(`first channel "${c.first.label}"`);
        if (c.role === 'offer') {
            const payload = randomBytes(20000);
            c.first.send('hello from the offerer');
            c.first.send(payload);
            const a = await c.first.inbox.next(() => true, 10000, 'text back');
            check(a === 'hello from the offerer', `text back: ${describe(a)}`);
            const b = await c.first.inbox.next(() => true, 10000, 'binary back');
            check(sameBytes(b, payload), `binary back: ${describe(b)}`);
            return 'browser to browser: text and 20000 bytes echoed';
        }
        for (let i = 0; i < 2; i++)
            c.first.send(await c.first.inbox.next(() => true, 10000, 'a message to echo'));
        await sleep(500);
        return 'browser to browser: echoed two messages';
    };

    // Run one case; always resolves to a JSON string the driver parses.
    async function run(name, params) {
        const t0 = performance.now();
        let c;
        try {
            const fn = cases[name];
            if (!fn)
                throw new Error(`no case "${name}" in harness.js`);
            c = await connect(params);
            c.role = params.role;
            const detail = await deadline(fn(c, params), params.timeout ?? 60000, name);
            return JSON.stringify({ ok: true, detail, ms: performance.now() - t0 });
        } catch (e) {
            const state = c ? ` [pc ${c.pc.connectionState}, ice ${c.pc.iceConnectionState}` +
                                  `, remote candidates ${c.remote.length}]` : '';
            return JSON.stringify({ ok: false, error: `${e.message || e}${state}`,
                                    ms: performance.now() - t0 });
        }
    }

    return { run, cases: Object.keys(cases), sha256Hex };
})();
