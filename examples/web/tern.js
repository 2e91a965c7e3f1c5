// SPDX-License-Identifier: MIT
//
// The tern demo page: joins a room of tern-signal (signaling protocol v1) and connects one
// RTCPeerConnection to every other peer of the room: browsers, tern-echo, tern-chat, any
// client of the library. It shows the peers with their connection state and the selected
// candidate pair (getStats), a chat (channel "chat"), and file transfers with progress, both
// ways, with tern-send and tern-recv too (FILE-PROTOCOL.md version 2: one channel per file,
// SHA-256 checked, resume after an interruption: an incoming file cut off is kept in memory
// for the page's life, so that the sender's next try continues after it).
//
// URL parameters:
//   ?room=NAME        the room (default "demo"); [A-Za-z0-9_.-], 1 to 64 characters
//   &role=auto|offer|answer
//                     who offers: auto (default) offers to newcomers and answers the peers
//                     already in the room; offer always offers; answer never does
//   &autojoin=0       do not join on load (a test calls tern.join itself)
//   &ice=0            ignore the iceServers of welcome (use no STUN/TURN server at all)
//
// Scripting interface (for tests; everything runs in the page, nothing leaves it):
//   tern.ready                   Promise -> {id, room, peers}: resolved at welcome, rejected if
//                                the connection closes before
//   tern.join(room?, {role}?)    join (when autojoin=0); returns tern.ready
//   tern.status()                a JSON-safe snapshot: {state: 'idle'|'connecting'|'joined'|
//                                'closed', id, room, role, closeCode, closeReason,
//                                peers: [{id, offering, connectionState, iceConnectionState,
//                                signalingState, selectedPair: {local, remote, rtt} | null,
//                                channels: [handle...]}],
//                                channels: [{handle, peer, label, protocol, id, readyState,
//                                ordered, maxRetransmits, maxPacketLifeTime, negotiated,
//                                bufferedAmount, local, received}],
//                                transfers: [{id, direction, peer, name, size, bytes, sha256,
//                                remoteSha256, resumedFrom, state: 'queued'|'sending'|
//                                'receiving'|'waiting'|'done'|'failed', ok, error}],
//                                errors: [text...]}
//                                (also kept as JSON in <pre id="status-json"> and as
//                                document.body.dataset.state)
//   tern.waitPeer(id?, ms?)      Promise -> peer id, once that peer (or any) is 'connected'
//   tern.openChannel(peer, label, init?)
//                                Promise -> channel handle (a number), once open; init is an
//                                RTCDataChannelInit
//   tern.waitChannel(label, ms?) Promise -> handle of an open channel with that label (one the
//                                remote opened, or ours)
//   tern.send(handle, data)      data: string (text), ArrayBuffer/typed array (binary), or
//                                {base64: '...'} (binary)
//   tern.receive(handle, ms?)    Promise -> the next message of the channel, in order:
//                                {text} or {base64, size}; rejects on timeout (default 20 s)
//   tern.closeChannel(handle), tern.hangUp(peer), tern.leave()
//   tern.sendFile(peer, file)    file: a File/Blob, or {name, data: ArrayBuffer|typed array|
//                                {base64}}; Promise -> {name, size, sha256, remoteSha256,
//                                resumedFrom, ok, error?} when the receiver answered (with
//                                tern-echo: the page checked the echoed copy); at most 4 at
//                                once per peer, the others wait (state 'queued')
//   tern.fileSha256(transferId)  Promise -> hex SHA-256 of a received file's bytes as saved
//                                (its download link), by crypto.subtle when the page has it
//   tern.sha256(bytes)           hex SHA-256 of an ArrayBuffer/typed array
//   tern.log                     the event log, newest last (strings)
//   tern.onevent                 optional function(kind, detail) called for every log entry
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  const FILE_PROTOCOL = 'tern-file/2';
  const CHUNK = 65536;          // the largest binary message of the protocol
  const BLOCK = 1 << 20;        // read from the file this much at a time
  const HIGH_WATER = 1 << 20;   // flow control: stop above, go on at the low-water event
  const LOW_WATER = 256 << 10;
  const MAX_TEXT = 65536;
  const PART_SUFFIX = '.tern-part';
  const SEND_PARALLEL = 4;
  const ACCEPT_WAIT_MS = 600000; // the receiver may hash a long prefix before its accept
  const MAX_PARTIALS = 4;        // interrupted receptions kept for a resume ...
  const MAX_PARTIAL_BYTES = 512 << 20; // ... and their bytes
  // With an echoing peer, the bytes sent and not yet echoed back (FILE-PROTOCOL.md, Echo).
  const ECHO_WINDOW = 4 << 20;
  const DEFAULT_WAIT_MS = 20000;

  const st = {
    state: 'idle',
    ws: null,
    id: null,
    room: null,
    role: params.get('role') || 'auto',
    useIce: params.get('ice') !== '0',
    iceServers: [],
    closeCode: null,
    closeReason: '',
    peers: new Map(),    // id -> peer
    channels: new Map(), // handle -> channel record
    nextHandle: 1,
    transfers: [],
    partials: new Map(), // name + size -> {parts, bytes, hash} of interrupted receptions
    nextTransfer: 1,
    errors: [],
    log: [],
    ready: null,
    readyResolve: null,
    readyReject: null,
    waiters: new Set(), // functions re-checked on every change
  };

  const $ = (id) => document.getElementById(id);

  // ---- small helpers ----

  function note(kind, text) {
    const line = `${new Date().toISOString().slice(11, 23)} ${kind}: ${text}`;
    st.log.push(line);
    if (st.log.length > 500) st.log.shift();
    const pre = $('event-log');
    if (pre) {
      pre.textContent = st.log.slice(-200).join('\n');
      pre.scrollTop = pre.scrollHeight;
    }
    if (typeof api.onevent === 'function') {
      try { api.onevent(kind, text); } catch (e) { /* the hook's problem */ }
    }
  }

  function fail(text) {
    st.errors.push(text);
    note('error', text);
    changed();
  }

  function toBytes(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data && typeof data.base64 === 'string') {
      const bin = atob(data.base64);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    throw new TypeError('expected an ArrayBuffer, a typed array or {base64}');
  }

  function toBase64(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000)
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / (1 << 20)).toFixed(1)} MiB`;
  }

  // Resolve when check() returns a value other than undefined; reject after ms.
  function waitFor(check, ms, what) {
    return new Promise((resolve, reject) => {
      const first = check();
      if (first !== undefined) return resolve(first);
      const entry = () => {
        const v = check();
        if (v !== undefined) {
          st.waiters.delete(entry);
          clearTimeout(timer);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        st.waiters.delete(entry);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms || DEFAULT_WAIT_MS);
      st.waiters.add(entry);
    });
  }

  let renderQueued = false;
  function changed() {
    for (const w of [...st.waiters]) w();
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(() => { renderQueued = false; render(); });
      // Hidden tabs (headless tests) may not run animation frames: render anyway.
      setTimeout(() => { if (renderQueued) { renderQueued = false; render(); } }, 100);
    }
  }

  // ---- signaling ----

  function send(msg) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) st.ws.send(JSON.stringify(msg));
  }

  function join(room, opts) {
    if (st.ws) return st.ready;
    room = room || params.get('room') || 'demo';
    if (opts && opts.role) st.role = opts.role;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(room)) {
      fail(`bad room name "${room}": 1 to 64 of A-Z a-z 0-9 _ . -`);
      st.readyReject(new Error('bad room name'));
      return st.ready;
    }
    st.room = room;
    st.state = 'connecting';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/ws/${encodeURIComponent(room)}`;
    note('signal', `connecting to ${url} as ${st.role}`);
    const ws = new WebSocket(url);
    st.ws = ws;
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return note('signal', 'bad JSON dropped'); }
      if (!msg || typeof msg.type !== 'string') return;
      onSignal(msg).catch((err) => fail(`${msg.type} from ${msg.from || 'server'}: ${err.message || err}`));
    };
    ws.onclose = (e) => {
      st.state = 'closed';
      st.closeCode = e.code;
      st.closeReason = e.reason || '';
      note('signal', `closed ${e.code} ${e.reason || ''}`);
      st.readyReject(new Error(`signaling closed: ${e.code} ${e.reason || ''}`));
      changed();
    };
    ws.onerror = () => note('signal', 'websocket error');
    changed();
    return st.ready;
  }

  async function onSignal(msg) {
    if (!msg.from) return onServer(msg);
    const peer = st.peers.get(msg.from);
    switch (msg.type) {
    case 'offer': return onOffer(msg.from, msg.sdp);
    case 'answer': return onAnswer(peer, msg.sdp);
    case 'candidate': return onCandidate(peer, msg);
    case 'bye': note('peer', `${msg.from} said bye`); return closePeer(msg.from);
    default: note('signal', `${msg.type} from ${msg.from} (not handled)`);
    }
  }

  async function onServer(msg) {
    switch (msg.type) {
    case 'welcome':
      st.id = msg.id;
      st.room = msg.room;
      st.state = 'joined';
      st.iceServers = st.useIce && Array.isArray(msg.iceServers) ? msg.iceServers : [];
      note('signal', `joined ${msg.room} as ${msg.id}; peers: ${(msg.peers || []).join(', ') || 'none'}`);
      st.readyResolve({ id: msg.id, room: msg.room, peers: msg.peers || [] });
      changed();
      // The newcomer waits for offers (signaling-protocol.md), unless told to offer.
      if (st.role === 'offer') for (const id of msg.peers || []) await offerTo(id, true);
      return;
    case 'join':
      note('signal', `${msg.id} joined`);
      if (st.role !== 'answer') await offerTo(msg.id, false);
      return;
    case 'leave':
      note('signal', `${msg.id} left`);
      return closePeer(msg.id);
    case 'error':
      return fail(`server: ${msg.code}: ${msg.message}`);
    default:
      note('signal', `server sent ${msg.type}`);
    }
  }

  // ---- peers ----

  function makePeer(id, offering, insists) {
    const pc = new RTCPeerConnection({ iceServers: st.iceServers });
    const peer = {
      id, pc, offering,
      // Perfect negotiation: who gives way when offers cross (as the native client does).
      // Offers cross only between a newcomer offering from welcome and a member offering on
      // its join; the newcomer's offer stands, whatever the roles.
      polite: !insists,
      makingOffer: false,
      ignoreOffer: false,
      pending: [],        // candidates that came before the remote description
      chat: null,
      selected: null,
      statsTimer: null,
      chatTimer: null,
      sending: 0,         // file transfers to this peer under way (at most SEND_PARALLEL)
      slotWaiters: [],
    };
    st.peers.set(id, peer);
    pc.onicecandidate = (e) => {
      // The end of candidates is not sent: the native side and browsers do without it.
      if (!e.candidate) return;
      send({ type: 'candidate', to: id, candidate: e.candidate.candidate,
             sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex });
    };
    pc.onconnectionstatechange = () => {
      note('peer', `${id} ${pc.connectionState}`);
      if (pc.connectionState === 'connected') {
        // Whoever offers opens "chat"; when the offerer did not (tern-echo), open it.
        if (!peer.chatTimer)
          peer.chatTimer = setTimeout(() => { if (!peer.chat && st.peers.get(id) === peer) openChat(peer); }, 500);
        updateStats(peer);
      }
      changed();
    };
    pc.oniceconnectionstatechange = changed;
    pc.onsignalingstatechange = changed;
    pc.ondatachannel = (e) => adoptChannel(peer, e.channel, false);
    peer.statsTimer = setInterval(() => updateStats(peer), 1000);
    note('peer', `${id}: new connection (${offering ? 'offering' : 'answering'})`);
    changed();
    return peer;
  }

  async function offerTo(id, fromWelcome) {
    if (id === st.id || st.peers.has(id)) return;
    const peer = makePeer(id, true, fromWelcome);
    openChat(peer);
    peer.makingOffer = true;
    try {
      // The implicit form (no description): if the peer's offer comes in meanwhile, the
      // browser's operation chain still makes the right kind of description.
      await peer.pc.setLocalDescription();
      const d = peer.pc.localDescription;
      if (!peer.dropped && d && d.type === 'offer') {
        send({ type: 'offer', to: id, sdp: d.sdp });
        note('peer', `${id}: offer sent`);
      }
    } finally {
      peer.makingOffer = false;
    }
  }

  async function onOffer(from, sdp) {
    if (typeof sdp !== 'string') return;
    let peer = st.peers.get(from);
    const collision = peer && (peer.makingOffer || peer.pc.signalingState !== 'stable');
    if (peer) peer.ignoreOffer = !peer.polite && collision;
    if (peer && peer.ignoreOffer) return note('peer', `${from}: offers crossed, ours stands`);
    if (collision) {
      // Polite: theirs goes first. Not by a rollback of our offer: Chromium then never trickles
      // the candidates of its answer (seen here: the native side got none, ICE never started).
      // Our pc has not connected to anything yet, so a fresh one costs nothing.
      note('peer', `${from}: offers crossed, theirs goes first`);
      dropPeer(peer);
      peer = null;
    }
    if (!peer) peer = makePeer(from, false);
    await peer.pc.setRemoteDescription({ type: 'offer', sdp });
    await addPending(peer);
    await peer.pc.setLocalDescription();
    const d = peer.pc.localDescription;
    if (d && d.type === 'answer') {
      send({ type: 'answer', to: from, sdp: d.sdp });
      note('peer', `${from}: answer sent`);
    }
  }

  async function onAnswer(peer, sdp) {
    if (!peer || typeof sdp !== 'string' || peer.pc.signalingState !== 'have-local-offer') return;
    await peer.pc.setRemoteDescription({ type: 'answer', sdp });
    await addPending(peer);
  }

  async function onCandidate(peer, msg) {
    if (!peer || typeof msg.candidate !== 'string' || msg.candidate === '') return;
    const init = { candidate: msg.candidate, sdpMid: msg.sdpMid ?? null,
                   sdpMLineIndex: msg.sdpMLineIndex ?? (msg.sdpMid == null ? 0 : null) };
    // Browsers refuse candidates before the remote description: keep them until then.
    if (!peer.pc.remoteDescription) return void peer.pending.push(init);
    try {
      await peer.pc.addIceCandidate(init);
    } catch (err) {
      if (!peer.ignoreOffer) note('peer', `${peer.id}: candidate refused: ${err.message}`);
    }
  }

  async function addPending(peer) {
    const list = peer.pending;
    peer.pending = [];
    for (const init of list) {
      try { await peer.pc.addIceCandidate(init); } catch (err) { /* stale or of a rolled-back offer */ }
    }
  }

  // Forget a pc and its channels (no bye: the peer keeps its own side).
  function dropPeer(peer) {
    st.peers.delete(peer.id);
    peer.dropped = true;
    clearInterval(peer.statsTimer);
    clearTimeout(peer.chatTimer);
    for (const [handle, ch] of st.channels) if (ch.peerObj === peer) st.channels.delete(handle);
    peer.pc.close();
  }

  function closePeer(id) {
    const peer = st.peers.get(id);
    if (!peer) return;
    st.peers.delete(id);
    clearInterval(peer.statsTimer);
    clearTimeout(peer.chatTimer);
    for (const ch of st.channels.values()) if (ch.peer === id && ch.dc.readyState !== 'closed') ch.dc.close();
    peer.pc.close();
    for (const t of st.transfers) {
      if (t.peer !== id || isOver(t)) continue;
      keepPartial(t);
      endTransfer(t, false, 'the peer left');
    }
    note('peer', `${id}: connection closed`);
    changed();
  }

  async function updateStats(peer) {
    if (peer.pc.connectionState === 'closed') return;
    let stats;
    try { stats = await peer.pc.getStats(); } catch (e) { return; }
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    // Firefox has no transport.selectedCandidatePairId: its pair says selected.
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.selected) pair = r; });
    if (!pair) stats.forEach((r) => {
      if (!pair && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    });
    const side = (c) => c && { address: c.address ?? c.ip, port: c.port, type: c.candidateType,
                               protocol: c.protocol };
    const next = pair ? { local: side(stats.get(pair.localCandidateId)),
                          remote: side(stats.get(pair.remoteCandidateId)),
                          rtt: pair.currentRoundTripTime ?? null } : null;
    if (JSON.stringify(next) !== JSON.stringify(peer.selected)) {
      peer.selected = next;
      changed();
    }
  }

  // ---- channels ----

  function adoptChannel(peer, dc, local) {
    dc.binaryType = 'arraybuffer';
    const ch = { handle: st.nextHandle++, peer: peer.id, peerObj: peer, dc, local, queue: [],
                 received: 0, incoming: null, outgoing: null, accept: null };
    st.channels.set(ch.handle, ch);
    if (dc.label === 'chat' && !peer.chat) peer.chat = ch;
    dc.onopen = () => {
      note('channel', `${peer.id} "${dc.label}" open (${local ? 'ours' : 'theirs'})`);
      if (dc.label === 'chat') chatLine('*', `${peer.id} is here`);
      changed();
    };
    dc.onclose = () => {
      note('channel', `${peer.id} "${dc.label}" closed`);
      if (peer.chat === ch) peer.chat = null;
      // An incoming file cut off keeps what it has, for the sender's next try (resume).
      if (ch.incoming && !isOver(ch.incoming)) keepPartial(ch.incoming);
      for (const t of [ch.incoming, ch.outgoing])
        if (t && !isOver(t)) endTransfer(t, false, 'the channel closed');
      changed();
    };
    dc.onmessage = (e) => onChannelMessage(peer, ch, e.data);
    if (dc.readyState === 'open') dc.onopen();
    changed();
    return ch;
  }

  function onChannelMessage(peer, ch, data) {
    ch.received++;
    if (ch.dc.protocol === FILE_PROTOCOL) return onFileMessage(peer, ch, data);
    if (ch.dc.label === 'chat') {
      chatLine(peer.id, typeof data === 'string' ? data : `(${data.byteLength} bytes of binary)`);
    }
    // Kept for tern.receive, bounded so an unread channel cannot grow without limit.
    if (ch.queue.length < 10000)
      ch.queue.push(typeof data === 'string' ? { text: data }
                                             : { base64: toBase64(new Uint8Array(data)), size: data.byteLength });
    changed();
  }

  function openChat(peer) {
    if (peer.chat) return peer.chat;
    return adoptChannel(peer, peer.pc.createDataChannel('chat'), true);
  }

  function chatLine(who, text) {
    const log = $('chat-log');
    if (!log) return;
    const div = document.createElement('div');
    const b = document.createElement('b');
    b.textContent = who === '*' ? '* ' : `${who}: `;
    div.append(b, document.createTextNode(text));
    log.append(div);
    log.scrollTop = log.scrollHeight;
  }

  function sendChat(text) {
    let sent = 0;
    for (const peer of st.peers.values())
      if (peer.chat && peer.chat.dc.readyState === 'open') { peer.chat.dc.send(text); sent++; }
    chatLine(st.id || 'me', sent ? text : `${text}   (nobody to send it to yet)`);
  }

  // ---- files (FILE-PROTOCOL.md, version 2) ----

  function newTransfer(direction, peer, name, size) {
    const t = { id: st.nextTransfer++, direction, peer, name, size, bytes: 0, sha256: null,
                remoteSha256: null, resumedFrom: 0, phase: null,
                state: direction === 'send' ? 'queued' : 'receiving', ok: null, error: null,
                blobUrl: null, resolve: null, parts: null, hash: null, expected: null, echo: false };
    st.transfers.push(t);
    changed();
    return t;
  }

  const isOver = (t) => t.state === 'done' || t.state === 'failed';

  function endTransfer(t, ok, error, remoteSha) {
    if (isOver(t)) return;
    t.state = ok ? 'done' : 'failed';
    t.ok = ok;
    t.error = error || null;
    if (remoteSha) t.remoteSha256 = remoteSha;
    note('file', `${t.direction} "${t.name}" ${ok ? 'ok' : `failed: ${error}`}`);
    if (t.resolve) {
      t.resolve({ name: t.name, size: t.size, sha256: t.sha256, remoteSha256: t.remoteSha256,
                  resumedFrom: t.resumedFrom, ok, ...(ok ? {} : { error }) });
    }
    changed();
  }

  // A name from the peer is never a path here either (FILE-PROTOCOL.md, Names): the same
  // rules as tern-recv, so that both refuse the same senders.
  function nameProblem(name) {
    if (typeof name !== 'string' || name === '') return 'the name is empty';
    if (new TextEncoder().encode(name).length > 4096) return 'the name is longer than 4096 bytes';
    if (name[0] === '/') return 'the name is an absolute path';
    if (/[\u0000-\u001f\u007f]/.test(name)) return 'the name has a control character';
    if (name.includes('\\')) return 'the name has a backslash';
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name))
      return 'the name is not UTF-8';
    const parts = name.split('/');
    for (const c of parts) {
      if (c === '') return 'the name has an empty component';
      if (c === '.') return 'a component is "."';
      if (c === '..') return 'a component is ".."';
      if (new TextEncoder().encode(c).length > 255) return 'a component is longer than 255 bytes';
      if (c.endsWith(PART_SUFFIX)) return `a component ends in ${PART_SUFFIX} (the receiver's partial files)`;
    }
    if (parts.length > 64) return 'the name has more than 64 components';
    return null;
  }

  const isHash = (h) => typeof h === 'string' && /^[0-9a-fA-F]{64}$/.test(h);
  const isCount = (n) => Number.isSafeInteger(n) && n >= 0;
  const partialKey = (name, size) => `${name}\n${size}`;

  // What an interrupted incoming transfer received, kept (in memory, for this page's life) so
  // that the sender's next offer of that name and size resumes after it.
  function keepPartial(t) {
    if (t.direction !== 'receive' || t.echo || !t.parts || t.bytes === 0 || t.bytes >= t.size) return;
    st.partials.set(partialKey(t.name, t.size), { parts: t.parts, bytes: t.bytes, hash: t.hash });
    let total = 0;
    for (const p of st.partials.values()) total += p.bytes;
    for (const [key, p] of st.partials) {
      if (st.partials.size <= MAX_PARTIALS && total <= MAX_PARTIAL_BYTES) break;
      st.partials.delete(key);
      total -= p.bytes;
    }
    note('file', `kept ${formatBytes(t.bytes)} of "${t.name}" for a resume`);
  }

  function waitLow(dc) {
    if (dc.bufferedAmount <= HIGH_WATER) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => { dc.removeEventListener('bufferedamountlow', done); dc.removeEventListener('close', done);
                           dc.readyState === 'open' ? resolve() : reject(new Error('the channel closed')); };
      dc.addEventListener('bufferedamountlow', done);
      dc.addEventListener('close', done);
    });
  }

  // An echo sends back what it gets as fast as it gets it; when our side reads the echoed
  // copy more slowly than it sends (hashing on the page's one thread), the echo's send buffer
  // grows until its stack refuses more. Keep the bytes in flight end to end bounded.
  function waitEcho(ch, t) {
    const echoed = () => (ch.incoming && ch.incoming.echo ? ch.incoming.bytes : null);
    if (echoed() === null || t.bytes - echoed() <= ECHO_WINDOW) return Promise.resolve();
    return waitFor(() => (ch.dc.readyState !== 'open' || t.bytes - echoed() <= ECHO_WINDOW / 2 ? true : undefined),
                   DEFAULT_WAIT_MS, 'the echo');
  }

  async function readBlock(source, offset, length) {
    if (source instanceof Blob) return new Uint8Array(await source.slice(offset, offset + length).arrayBuffer());
    return source.subarray(offset, offset + length);
  }

  // At most SEND_PARALLEL files to one peer at once (tern-recv refuses past 16).
  async function takeSlot(peer) {
    while (peer.sending >= SEND_PARALLEL) await new Promise((r) => peer.slotWaiters.push(r));
    peer.sending++;
    return () => {
      peer.sending--;
      const next = peer.slotWaiters.shift();
      if (next) next();
    };
  }

  // Hash the first `length` bytes of the source (the prefix the receiver says it holds).
  async function hashPrefix(source, length) {
    const h = new TernSha256();
    for (let off = 0; off < length; off += BLOCK) h.update(await readBlock(source, off, Math.min(BLOCK, length - off)));
    return h;
  }

  async function sendFile(peerId, file) {
    const peer = st.peers.get(peerId);
    if (!peer) throw new Error(`no peer ${peerId}`);
    const isBlob = file instanceof Blob;
    const source = isBlob ? file : toBytes(file.data);
    const name = (file.name || 'file').replace(/^.*[\\/]/, '') || 'file';
    const size = isBlob ? file.size : source.length;
    const t = newTransfer('send', peerId, name, size);
    const result = new Promise((resolve) => { t.resolve = resolve; });
    const release = await takeSlot(peer);
    result.then(release);
    try {
      if (isOver(t)) return result;
      t.state = 'sending';
      const ch = adoptChannel(peer, peer.pc.createDataChannel('file', { protocol: FILE_PROTOCOL }), true);
      ch.outgoing = t;
      const dc = ch.dc;
      dc.bufferedAmountLowThreshold = LOW_WATER;
      await waitFor(() => (dc.readyState === 'open' ? true : dc.readyState === 'closed' ? false : undefined),
                    DEFAULT_WAIT_MS, 'the file channel');
      if (dc.readyState !== 'open') throw new Error('the file channel did not open');
      dc.send(JSON.stringify({ type: 'file', version: 2, name, size, mime: (isBlob && file.type) || '' }));
      // The receiver says how much it has (it may hash a long prefix first: wait long).
      t.phase = 'offered';
      const accept = await waitFor(() => (ch.accept ? ch.accept : isOver(t) || dc.readyState !== 'open' ? null : undefined),
                                   ACCEPT_WAIT_MS, 'the receiver\'s accept');
      if (!accept) throw new Error(t.error || 'the channel closed before accept');
      let hash = new TernSha256();
      let start = 0;
      if (accept.offset > 0) {
        // Our own prefix, hashed anyway for the whole file's hash, must equal theirs.
        hash = await hashPrefix(source, accept.offset);
        if (hash.clone().hex() === accept.sha256.toLowerCase()) {
          start = accept.offset;
        } else {
          note('file', `"${name}": the receiver's ${accept.offset} bytes differ from ours, sending it all`);
          hash = new TernSha256();
        }
      }
      t.resumedFrom = start;
      t.bytes = start;
      t.phase = 'streaming';
      dc.send(JSON.stringify({ type: 'start', offset: start }));
      for (let off = start; off < size; off += BLOCK) {
        const block = await readBlock(source, off, Math.min(BLOCK, size - off));
        hash.update(block);
        for (let i = 0; i < block.length; i += CHUNK) {
          await waitLow(dc);
          await waitEcho(ch, t);
          if (isOver(t)) return result; // refused meanwhile
          dc.send(block.subarray(i, i + CHUNK));
          t.bytes += Math.min(CHUNK, block.length - i);
        }
        changed();
      }
      t.sha256 = hash.hex();
      dc.send(JSON.stringify({ type: 'end', sha256: t.sha256 }));
      t.state = 'waiting';
      t.phase = 'ended';
      changed();
    } catch (err) {
      endTransfer(t, false, err.message || String(err));
    }
    return result;
  }

  function onFileOffer(peer, ch, msg) {
    if (ch.incoming) return fileError(ch, 'a second file on one channel');
    if (msg.version !== 2) return fileError(ch, 'unsupported version');
    const problem = nameProblem(msg.name);
    if (problem) return fileError(ch, `refused: ${problem}`);
    if (!isCount(msg.size)) return fileError(ch, 'file without a size from 0 to 2^53-1');
    if (msg.sha256 !== undefined && !isHash(msg.sha256)) return fileError(ch, 'sha256 is not 64 hex digits');
    const t = newTransfer('receive', peer.id, msg.name, msg.size);
    t.expected = msg.sha256 ? msg.sha256.toLowerCase() : null;
    t.mime = typeof msg.mime === 'string' ? msg.mime : '';
    t.echo = !!ch.outgoing; // our own stream, returned by an echo: nothing to resume
    ch.incoming = t;
    const key = partialKey(msg.name, msg.size);
    const kept = t.echo ? null : st.partials.get(key);
    st.partials.delete(key);
    t.parts = kept ? kept.parts : [];
    t.hash = kept ? kept.hash : new TernSha256();
    t.bytes = kept ? kept.bytes : 0;
    t.phase = 'accepted';
    ch.dc.send(JSON.stringify({ type: 'accept', offset: t.bytes, sha256: t.hash.clone().hex() }));
    changed();
  }

  function onFileStart(ch, msg) {
    const t = ch.incoming;
    if (!t || t.phase !== 'accepted' || isOver(t)) return fileError(ch, 'start out of turn');
    if (msg.offset === 0 && t.bytes > 0) {
      // The sender's prefix differs from what we kept: start over.
      t.parts = [];
      t.hash = new TernSha256();
      t.bytes = 0;
    } else if (msg.offset !== t.bytes) {
      return fileError(ch, `start at ${msg.offset}, but we accepted from ${t.bytes}`);
    }
    t.resumedFrom = t.bytes;
    t.phase = 'receiving';
    if (t.bytes > 0) note('file', `"${t.name}" resumed at ${t.bytes}`);
    changed();
  }

  function onFileEnd(ch, msg) {
    const t = ch.incoming;
    if (!t || t.phase !== 'receiving' || isOver(t)) return fileError(ch, 'end out of turn');
    if (!isHash(msg.sha256)) return fileError(ch, 'end without a sha256 of 64 hex digits');
    t.sha256 = t.hash.hex();
    const theirs = msg.sha256.toLowerCase();
    const complete = t.bytes === t.size;
    const ok = complete && t.sha256 === theirs && (!t.expected || t.expected === t.sha256);
    const why = ok ? null : complete ? 'SHA-256 mismatch' : 'fewer bytes than announced';
    if (ch.dc.readyState === 'open')
      ch.dc.send(JSON.stringify({ type: 'done', ok, size: t.bytes, sha256: t.sha256, ...(why ? { message: why } : {}) }));
    if (ok && !t.echo) t.blobUrl = URL.createObjectURL(new Blob(t.parts, { type: t.mime || 'application/octet-stream' }));
    t.parts = null;
    t.phase = 'ended';
    if (ch.outgoing) ch.outgoing.remoteSha256 = t.sha256;
    endTransfer(t, ok, why, theirs);
  }

  function onFileBytes(ch, data) {
    const t = ch.incoming;
    if (!t || t.phase !== 'receiving' || isOver(t)) return fileError(ch, 'bytes before start');
    const bytes = new Uint8Array(data);
    if (t.bytes + bytes.length > t.size) {
      t.parts = null; // damaged: nothing kept
      return fileError(ch, `more bytes than the ${t.size} announced`);
    }
    t.hash.update(bytes);
    t.parts.push(bytes);
    t.bytes += bytes.length;
    if (t.bytes === t.size || (t.bytes & 0x3ffff) < bytes.length) changed();
  }

  function onFileMessage(peer, ch, data) {
    if (typeof data !== 'string') return onFileBytes(ch, data);
    if (data.length > MAX_TEXT) return fileError(ch, `a text message longer than ${MAX_TEXT} bytes`);
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return fileError(ch, 'text that is not JSON'); }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string')
      return fileError(ch, 'a JSON message without a string type');
    // Each half of a channel sees only the other direction's types (FILE-PROTOCOL.md, Echo).
    switch (msg.type) {
    case 'file': return onFileOffer(peer, ch, msg);
    case 'start':
      if (!isCount(msg.offset)) return fileError(ch, 'offset is not an integer from 0 to 2^53-1');
      return onFileStart(ch, msg);
    case 'end': return onFileEnd(ch, msg);
    case 'accept': {
      const t = ch.outgoing;
      if (!t || ch.accept || t.phase !== 'offered') return;
      if (!isCount(msg.offset) || msg.offset > t.size || (msg.offset > 0 && !isHash(msg.sha256))) {
        ch.dc.send(JSON.stringify({ type: 'error', message: 'a bad accept' }));
        endTransfer(t, false, 'the receiver sent a bad accept');
        ch.dc.close();
        return;
      }
      ch.accept = { offset: msg.offset, sha256: msg.sha256 || '' };
      changed();
      return;
    }
    case 'done': {
      const t = ch.outgoing;
      if (!t || isOver(t)) return;
      const ok = !!msg.ok && msg.sha256 === t.sha256;
      endTransfer(t, ok, ok ? null : msg.ok ? 'SHA-256 mismatch' : `the receiver found it damaged${msg.message ? `: ${msg.message}` : ''}`,
                  typeof msg.sha256 === 'string' ? msg.sha256 : null);
      ch.dc.close(); // the sender closes (FILE-PROTOCOL.md)
      return;
    }
    case 'error': {
      const text = `the peer said: ${typeof msg.message === 'string' ? msg.message : 'error'}`;
      if (ch.outgoing && !isOver(ch.outgoing)) {
        endTransfer(ch.outgoing, false, text);
        ch.dc.close();
      }
      // The sender gave up: what we have stays for a resume.
      if (ch.incoming && !isOver(ch.incoming)) {
        keepPartial(ch.incoming);
        endTransfer(ch.incoming, false, text);
      }
      return;
    }
    default:
      return; // unknown types are ignored (FILE-PROTOCOL.md, Extending)
    }
  }

  function fileError(ch, text) {
    if (ch.dc.readyState === 'open') ch.dc.send(JSON.stringify({ type: 'error', message: text }));
    const t = ch.incoming;
    if (t && !isOver(t)) endTransfer(t, false, text);
    else if (!t) fail(`file channel: ${text}`);
  }

  // ---- status and rendering ----

  function channelInfo(ch) {
    const dc = ch.dc;
    return { handle: ch.handle, peer: ch.peer, label: dc.label, protocol: dc.protocol, id: dc.id,
             readyState: dc.readyState, ordered: dc.ordered, maxRetransmits: dc.maxRetransmits,
             maxPacketLifeTime: dc.maxPacketLifeTime, negotiated: dc.negotiated,
             bufferedAmount: dc.bufferedAmount, local: ch.local, received: ch.received };
  }

  function status() {
    const peers = [...st.peers.values()].map((p) => ({
      id: p.id, offering: p.offering, connectionState: p.pc.connectionState,
      iceConnectionState: p.pc.iceConnectionState, signalingState: p.pc.signalingState,
      selectedPair: p.selected,
      channels: [...st.channels.values()].filter((c) => c.peer === p.id).map((c) => c.handle),
    }));
    const transfers = st.transfers.map((t) => ({
      id: t.id, direction: t.direction, peer: t.peer, name: t.name, size: t.size, bytes: t.bytes,
      sha256: t.sha256, remoteSha256: t.remoteSha256, resumedFrom: t.resumedFrom, state: t.state,
      ok: t.ok, error: t.error,
    }));
    return { state: st.state, id: st.id, room: st.room, role: st.role, closeCode: st.closeCode,
             closeReason: st.closeReason, peers, channels: [...st.channels.values()].map(channelInfo),
             transfers, errors: [...st.errors] };
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function pairText(sel) {
    if (!sel || !sel.local || !sel.remote) return 'no pair selected yet';
    const side = (c) => `${c.address}:${c.port} ${c.type}${c.protocol ? `/${c.protocol}` : ''}`;
    const rtt = sel.rtt != null ? `, rtt ${(sel.rtt * 1000).toFixed(1)} ms` : '';
    return `${side(sel.local)} ⇄ ${side(sel.remote)}${rtt}`;
  }

  function render() {
    const s = status();
    document.body.dataset.state = s.state;
    const json = $('status-json');
    if (json) json.textContent = JSON.stringify(s);
    if (!$('peer-list')) return;
    $('room').textContent = s.room || '-';
    $('self').textContent = s.id || '-';
    $('conn').textContent = s.state === 'closed' ? `closed (${s.closeCode} ${s.closeReason})` : s.state;
    $('conn').className = `state ${s.state}`;

    const list = $('peer-list');
    list.replaceChildren();
    if (!s.peers.length) list.append(el('li', 'empty', 'nobody else here yet: open this page in another tab, or run tern-echo'));
    for (const p of s.peers) {
      const li = el('li');
      li.append(el('b', null, p.id), el('span', `state ${p.connectionState}`, p.connectionState),
                el('span', 'muted', `ice ${p.iceConnectionState}, ${p.offering ? 'we offered' : 'they offered'}`),
                el('div', 'pair', pairText(p.selectedPair)));
      const chans = s.channels.filter((c) => c.peer === p.id && c.readyState !== 'closed')
        .map((c) => `${c.label}${c.protocol ? ` (${c.protocol})` : ''}`);
      li.append(el('div', 'muted', chans.length ? `channels: ${chans.join(', ')}` : 'no channel open'));
      list.append(li);
    }

    const tl = $('transfers');
    tl.replaceChildren();
    for (const t of st.transfers) {
      const li = el('li', `transfer ${t.state}`);
      const arrow = t.direction === 'send' ? `to ${t.peer}` : `from ${t.peer}`;
      li.append(el('b', null, t.name), el('span', 'muted', ` ${formatBytes(t.size)} ${arrow} `));
      const bar = el('progress');
      bar.max = t.size || 1;
      bar.value = t.size ? t.bytes : 1;
      const resumed = t.resumedFrom ? ` (resumed at ${formatBytes(t.resumedFrom)})` : '';
      li.append(bar, el('span', null, ` ${t.state}${resumed}${t.error ? `: ${t.error}` : ''}`));
      if (t.sha256) li.append(el('div', 'hash', `sha256 ${t.sha256}${t.remoteSha256 && t.remoteSha256 !== t.sha256 ? ` (theirs ${t.remoteSha256})` : ''}`));
      if (t.blobUrl) {
        const a = el('a', null, 'save');
        a.href = t.blobUrl;
        a.download = t.name.replace(/^.*\//, '');
        li.append(' ', a);
      }
      tl.append(li);
    }
  }

  // ---- the page ----

  function sendFilesToAll(files) {
    const peers = [...st.peers.values()].filter((p) => p.pc.connectionState === 'connected');
    if (!peers.length) return fail('no connected peer to send files to');
    for (const f of files) for (const p of peers) sendFile(p.id, f);
  }

  function setupPage() {
    const form = $('chat-form');
    if (form) form.addEventListener('submit', (e) => {
      e.preventDefault();
      const input = $('chat-input');
      if (input.value) sendChat(input.value);
      input.value = '';
    });
    const drop = $('drop');
    if (drop) {
      drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
      drop.addEventListener('dragleave', () => drop.classList.remove('over'));
      drop.addEventListener('drop', (e) => {
        e.preventDefault();
        drop.classList.remove('over');
        sendFilesToAll([...e.dataTransfer.files]);
      });
    }
    const picker = $('file-input');
    if (picker) picker.addEventListener('change', () => { sendFilesToAll([...picker.files]); picker.value = ''; });
    render();
    if (params.get('autojoin') !== '0') join();
  }

  st.ready = new Promise((resolve, reject) => { st.readyResolve = resolve; st.readyReject = reject; });
  st.ready.catch(() => {}); // a failure shows in the page; callers who await it still see it

  const api = {
    get ready() { return st.ready; },
    join,
    status,
    waitPeer(id, ms) {
      return waitFor(() => {
        for (const p of st.peers.values())
          if ((!id || p.id === id) && p.pc.connectionState === 'connected') return p.id;
        return undefined;
      }, ms, `peer ${id || '(any)'}`);
    },
    async openChannel(peerId, label, init) {
      const peer = st.peers.get(peerId);
      if (!peer) throw new Error(`no peer ${peerId}`);
      const ch = adoptChannel(peer, peer.pc.createDataChannel(label, init || {}), true);
      await waitFor(() => (ch.dc.readyState === 'open' ? true : ch.dc.readyState === 'closed' ? false : undefined),
                    DEFAULT_WAIT_MS, `channel ${label}`);
      if (ch.dc.readyState !== 'open') throw new Error(`channel ${label} closed before it opened`);
      return ch.handle;
    },
    waitChannel(label, ms) {
      return waitFor(() => {
        for (const ch of st.channels.values()) if (ch.dc.label === label && ch.dc.readyState === 'open') return ch.handle;
        return undefined;
      }, ms, `a channel "${label}"`);
    },
    send(handle, data) {
      const ch = st.channels.get(handle);
      if (!ch) throw new Error(`no channel ${handle}`);
      if (typeof data === 'string') ch.dc.send(data);
      else ch.dc.send(toBytes(data));
    },
    receive(handle, ms) {
      const ch = st.channels.get(handle);
      if (!ch) return Promise.reject(new Error(`no channel ${handle}`));
      return waitFor(() => (ch.queue.length ? ch.queue.shift() : undefined), ms, `a message on channel ${handle}`);
    },
    closeChannel(handle) {
      const ch = st.channels.get(handle);
      if (ch) ch.dc.close();
    },
    hangUp(peerId) {
      send({ type: 'bye', to: peerId });
      closePeer(peerId);
    },
    leave() {
      send({ type: 'bye' });
      for (const id of [...st.peers.keys()]) closePeer(id);
      if (st.ws) st.ws.close(1000);
    },
    sendFile,
    async fileSha256(id) {
      const t = st.transfers.find((x) => x.id === id);
      if (!t || !t.blobUrl) throw new Error(`no saved file for transfer ${id}`);
      const bytes = await (await fetch(t.blobUrl)).arrayBuffer();
      if (!(window.crypto && crypto.subtle)) return TernSha256.hex(bytes);
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
    },
    sha256: (bytes) => TernSha256.hex(toBytes(bytes)),
    log: st.log,
    onevent: null,
  };
  window.tern = api;

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setupPage);
  else setupPage();
})();
