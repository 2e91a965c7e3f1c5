// SPDX-License-Identifier: MIT
//
// The driver of tern's browser suite. It runs inside the network namespace that run.sh made,
// and starts everything itself: tern-signal, a tiny HTTP server for the test pages (pages/),
// one headless Chromium and one Firefox ESR (lib/browsers.mjs), and for every case a fresh
// native peer (tern-echo or browser_peer) in a room of its own. The page reports its own
// result: the driver evaluates `T.run(case, params)` in the tab and gets a JSON verdict back,
// so there is no collector to run and nothing to scrape. Native-side observations that cannot
// travel over a connection the case has just closed are read from the native peer's stdout.
//
// Every case runs for both browsers and both roles (the browser offers / the native side
// offers). One line per case: "ok N - BROWSER ROLE CASE (T s): detail" or "not ok ...", then a
// summary line; the exit status is non-zero if anything failed, a browser or program included.
//
// Options:
//   --signal PATH     tern-signal
//   --echo PATH       tern-echo
//   --peer PATH       browser_peer
//   --web DIR         the demo page's folder (examples/web), served by tern-signal
//   --browsers LIST   chromium,firefox (default both)
//   --roles LIST      browser-offers,native-offers (default both)
//   --only REGEX      run only the cases whose "browser role case" matches
//   --logs DIR        where logs go (default ./browser-logs); a failed case keeps its logs
//   --netns NAME      the namespace run.sh made (for the log only)
//   --retries N       try a failed case up to N more times (default 0; ctest passes 1): a
//                     case that then passes is reported as passed, its earlier failure
//                     printed in its line and in a "# flaky" line at the end
//   --keep-logs       keep the native peers' logs of cases that passed too
//   --list            print the cases and exit

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchers } from './lib/browsers.mjs';
import { FILE_CASES, filesCase } from './files_cases.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

// The namespace is ours alone, so fixed ports cannot collide with anything.
const PORTS = { signal: 8765, http: 8766, chromium: 9222, firefox: 9223 };
const HOST = '127.0.0.1';

function parseArgs(argv) {
    const o = { browsers: 'chromium,firefox', roles: 'browser-offers,native-offers',
                logs: path.resolve('browser-logs') };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--list' || a === '--keep-logs') {
            o[a.slice(2).replace('-logs', '')] = true;
            continue;
        }
        if (!a.startsWith('--') || i + 1 >= argv.length)
            throw new Error(`bad argument ${a}`);
        o[a.slice(2)] = argv[++i];
    }
    o.retries = Number(o.retries ?? 0);
    o.browsers = o.browsers.split(',').filter(Boolean);
    o.roles = o.roles.split(',').filter(Boolean);
    return o;
}

// native: which program plays the native side. after: a check on the native peer's output
// once the page has finished (for what cannot come back over the connection).
const CASES = [
    { name: 'text', native: 'echo' },
    { name: 'binary', native: 'echo' },
    { name: 'size-0', native: 'echo' },
    { name: 'size-1', native: 'echo' },
    { name: 'size-16k', native: 'echo' },
    { name: 'size-64k', native: 'echo' },
    { name: 'size-256k', native: 'echo' },
    { name: 'ordered-1000', native: 'echo' },
    { name: 'unordered', native: 'echo' },
    { name: 'max-retransmits-0', native: 'echo' },
    { name: 'several-channels', native: 'echo' },
    { name: 'channel-properties', native: 'peer' },
    { name: 'negotiated', native: 'peer' },
    { name: 'native-opens-channels', native: 'peer' },
    { name: 'close-channel-browser', native: 'peer' },
    { name: 'close-channel-native', native: 'peer' },
    { name: 'close-peer-browser', native: 'peer',
      after: (np) => np.waitForLine(/^event close pc-close-b\b/m, 10000,
                                    'browser_peer to see its channel close') },
    { name: 'close-peer-native', native: 'peer' },
    // Browsers with mDNS host names on, launched apart on a veth address (see mdnsPhase);
    // tern must resolve the names (ice_mdns.c), not only answer the browser's checks.
    { name: 'mdns', native: 'peer', mdns: true },
    // The demo page (examples/web, served by tern-signal) with tern-echo: chat, file transfer.
    { name: 'demo-chat-file', native: 'echo', demo: true },
    // The same with both told to offer (tern-echo --offer in the room, the page joining with
    // role=offer): their offers cross, and tern-echo, the member that offered on join, gives
    // way to the newcomer's offer. Run as browser-offers only (the roles are both fixed).
    { name: 'demo-both-offer', native: 'echo', demo: true, bothOffer: true },
    // The demo page with tern-recv and tern-send: files both ways, and resume (files_cases.mjs).
    ...FILE_CASES,
];

// Size of the demo case's file: several 16 KiB chunks, a short last one, and more than the
// page's 1 MiB high-water mark, so that its flow control works too.
const DEMO_FILE_SIZE = 2 * 1024 * 1024 + 12345;

// The mDNS phase's non-loopback address: a veth pair inside the namespace, documentation range.
const MDNS_ADDR = '198.51.100.1';

const ROLES = { 'browser-offers': 'offer', 'native-offers': 'answer' };

// ---- processes: started here, stopped here, by PID ----

const started = new Set();

class Proc {
    constructor(name, cmd, args, logFile, env = {}) {
        this.name = name;
        this.out = '';
        this.log = fs.createWriteStream(logFile);
        this.log.write(`$ ${cmd} ${args.join(' ')}\n`);
        this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'],
                                       env: { ...process.env, ...env } });
        started.add(this);
        this.status = null;
        this.exited = new Promise((resolve) => {
            this.proc.on('exit', (code, signal) => {
                this.status = { code, signal };
                started.delete(this);
                resolve(this.status);
            });
            this.proc.on('error', (e) => {
                this.status = { code: 127, signal: null, error: e.message };
                started.delete(this);
                resolve(this.status);
            });
        });
        this.watchers = [];
        this.proc.stdout.on('data', (d) => {
            this.out += d.toString();
            this.log.write(d);
            this.watchers.forEach((w) => w());
        });
        this.proc.stderr.on('data', (d) => this.log.write(d));
    }

    waitForLine(re, ms, what) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const m = this.out.match(re);
                if (m) {
                    done();
                    resolve(m);
                }
            };
            const timer = setTimeout(() => {
                done();
                reject(new Error(`timeout (${ms} ms): ${what}`));
            }, ms);
            const done = () => {
                clearTimeout(timer);
                this.watchers = this.watchers.filter((w) => w !== check);
            };
            this.watchers.push(check);
            this.exited.then(() => {
                check();
                if (this.watchers.includes(check)) {
                    done();
                    reject(new Error(`${this.name} exited (${describeStatus(this.status)}) ` +
                                     `before: ${what}`));
                }
            });
            check();
        });
    }

    // SIGTERM, then SIGKILL after a grace period. Returns the exit status.
    async stop(graceMs = 3000) {
        if (this.status)
            return this.status;
        try {
            process.kill(this.proc.pid, 'SIGTERM');
        } catch {
            /* already gone */
        }
        const t = setTimeout(() => {
            try {
                process.kill(this.proc.pid, 'SIGKILL');
            } catch {
                /* already gone */
            }
        }, graceMs);
        const s = await this.exited;
        clearTimeout(t);
        await new Promise((r) => this.log.end(r));
        return s;
    }
}

function describeStatus(s) {
    if (!s)
        return 'running';
    if (s.error)
        return s.error;
    return s.signal ? `signal ${s.signal}` : `exit ${s.code}`;
}

// A native peer that exits on its own, or with anything but 0 when asked to stop (a sanitizer
// report, a crash), fails the case.
function badExit(s, stoppedByUs) {
    if (s.error)
        return true;
    if (s.signal)
        return !(stoppedByUs && s.signal === 'SIGTERM');
    return s.code !== 0;
}

function waitForPort(port, ms) {
    const end = Date.now() + ms;
    return new Promise((resolve, reject) => {
        const attempt = () => {
            const s = net.connect(port, HOST);
            s.on('connect', () => {
                s.destroy();
                resolve();
            });
            s.on('error', () => {
                s.destroy();
                if (Date.now() > end)
                    reject(new Error(`nothing listens on ${HOST}:${port} after ${ms} ms`));
                else
                    setTimeout(attempt, 50);
            });
        };
        attempt();
    });
}

// ---- the test pages' HTTP server ----

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                '.css': 'text/css', '.json': 'application/json' };

function servePages(root) {
    const server = http.createServer((req, res) => {
        const url = new URL(req.url, `http://${HOST}`);
        const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
        const file = path.join(root, rel === '/' ? 'index.html' : rel);
        if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
            res.writeHead(404).end('not found');
            return;
        }
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
                             'cache-control': 'no-store' });
        fs.createReadStream(file).pipe(res);
    });
    return new Promise((resolve) => server.listen(PORTS.http, HOST, () => resolve(server)));
}

// ---- the run ----

class Run {
    constructor(opts) {
        this.opts = opts;
        this.n = 0;
        this.passed = 0;
        this.failed = 0;
        this.flaky = [];
        this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-browser-'));
        fs.mkdirSync(opts.logs, { recursive: true });
        fs.rmSync(path.join(opts.logs, 'results.txt'), { force: true });
        this.signalUrl = `ws://${HOST}:${PORTS.signal}`;
        this.pageUrl = `http://${HOST}:${PORTS.http}/index.html`;
    }

    report(ok, browser, role, name, secs, text) {
        this.n++;
        if (ok)
            this.passed++;
        else
            this.failed++;
        const line = `${ok ? 'ok' : 'not ok'} ${this.n} - ${browser} ${role} ${name} ` +
                     `(${secs.toFixed(2)} s)${text ? ': ' + text : ''}`;
        this.say(line);
        return line;
    }

    // Every result line also goes to LOGS/results.txt, which outlives a passing ctest run
    // (whose output ctest does not show).
    say(line) {
        console.log(line);
        fs.appendFileSync(this.logPath('results.txt'), `${line}\n`);
    }

    logPath(name) {
        return path.join(this.opts.logs, name);
    }

    async startSignal() {
        const exe = this.opts.signal;
        if (!exe || !fs.existsSync(exe))
            throw new Error(`tern-signal not found (${exe ?? 'no --signal given'})`);
        const args = ['--listen', `${HOST}:${PORTS.signal}`, '--no-stun'];
        if (this.opts.web)
            args.push('--root', this.opts.web);
        this.signal = new Proc('tern-signal', exe, args, this.logPath('tern-signal.log'));
        await Promise.race([
            waitForPort(PORTS.signal, 10000),
            this.signal.exited.then((s) => {
                throw new Error(`tern-signal exited (${describeStatus(s)})`);
            }),
        ]);
    }

    // The native side of one case, in the room. It joins first, so that in "native-offers" it
    // is the one in the room when the browser arrives (signaling-protocol.md: the peer already
    // there offers to the newcomer), and in "browser-offers" the browser finds it in `peers`.
    async startNative(kind, role, room, logName) {
        const exe = kind === 'echo' ? this.opts.echo : this.opts.peer;
        const prog = kind === 'echo' ? 'tern-echo' : 'browser_peer';
        if (!exe || !fs.existsSync(exe))
            throw new Error(`${prog} not found (${exe ?? `no --${kind} given`})`);
        const url = `${this.signalUrl}/ws/${room}`;
        // tern-echo and browser_peer take the same options.
        const args = ['--signal', url, role === 'native-offers' ? '--offer' : '--answer'];
        args.push(...(this.mdnsMode ? ['--bind', MDNS_ADDR] : ['--loopback']));
        const p = new Proc(prog, exe, args, this.logPath(logName),
                           { TERN_LOG: process.env.TERN_LOG ?? 'info' });
        await this.waitInRoom(room, p);
        return p;
    }

    // Poll tern-signal's health endpoint until the room's first peer is counted; a native
    // peer that dies first fails at once.
    async waitInRoom(room, p) {
        const end = Date.now() + 10000;
        for (;;) {
            if (p.status)
                throw new Error(`${p.name} exited (${describeStatus(p.status)}) before joining`);
            const peers = await fetch(`http://${HOST}:${PORTS.signal}/healthz`)
                              .then((r) => r.json()).then((j) => j.peers).catch(() => 0);
            if (peers >= 1)
                return;
            if (Date.now() > end)
                throw new Error(`${p.name} did not join room ${room} within 10 s`);
            await new Promise((r) => setTimeout(r, 25));
        }
    }

    // One case, tried up to 1 + --retries times. A case that passes only on a later try is
    // reported as passed, with the earlier failure in its line and in the "# flaky" summary,
    // and the failed try's native log kept (BASE.tryN.native.log): an intermittent bug stays
    // in sight without failing every run of the whole suite.
    async runCase(browser, role, c) {
        const t0 = performance.now();
        const base = `${browser.name}.${role}.${c.name}`;
        const failures = [];
        let r;
        for (let t = 1; t <= 1 + this.opts.retries; t++) {
            r = await this.attempt(browser, role, c, base, t);
            if (!r.error)
                break;
            failures.push(r.error);
            if (t <= this.opts.retries && fs.existsSync(this.logPath(`${base}.native.log`)))
                fs.renameSync(this.logPath(`${base}.native.log`),
                              this.logPath(`${base}.try${t}.native.log`));
        }
        const secs = (performance.now() - t0) / 1000;
        let text = r.error ?? r.detail;
        if (!r.error && failures.length) {
            text += ` [passed on try ${failures.length + 1}; failed before: ${failures.join(' | ')}]`;
            this.flaky.push(`${browser.name} ${role} ${c.name}: ${failures.join(' | ')}`);
        }
        const line = this.report(!r.error, browser.name, role, c.name, secs, text);
        browser.log?.write(`==== ${line}\n`);
        if (!r.error && !this.opts.keep)
            fs.rmSync(this.logPath(`${base}.native.log`), { force: true });
    }

    async attempt(browser, role, c, base, t) {
        const room = `${browser.name}-${role}-${c.name}-${process.pid}-${t}`
                         .replace(/[^A-Za-z0-9_.-]/g, '_');
        browser.log?.write(`\n==== ${role} ${c.name} (room ${room}, try ${t})\n`);
        let native = null;
        let error = null, detail = '';
        if (c.files)
            return filesCase(this, browser, role, room, c, base,
                             { Proc, describeStatus, badExit, ROLES });
        try {
            native = await this.startNative(c.native, c.bothOffer ? 'native-offers' : role, room,
                                            `${base}.native.log`);
            if (c.demo) {
                detail = await this.demoCase(browser, role, room);
            } else {
                await browser.navigate(this.pageUrl);
                const params = { signal: this.signalUrl, room, role: ROLES[role], timeout: 60000 };
                const res = JSON.parse(await browser.evaluate(
                    `T.run(${JSON.stringify(c.name)}, ${JSON.stringify(params)})`, 90000));
                if (!res.ok)
                    throw new Error(res.error);
                detail = res.detail;
            }
            if (c.after)
                await c.after(native);
            if (native.status && badExit(native.status, false))
                throw new Error(`${native.name} exited during the case ` +
                                `(${describeStatus(native.status)})`);
        } catch (e) {
            error = e.message;
        }
        // Leave the page first, so the browser's peer connection goes away before the native
        // peer is stopped and checked.
        await browser.navigate('about:blank').catch(() => {});
        if (native) {
            const alreadyExited = !!native.status;
            const s = await native.stop();
            if (!error && badExit(s, !alreadyExited))
                error = `${native.name} ended badly (${describeStatus(s)}); see its log`;
        }
        return { error, detail };
    }

    // The demo page as a person uses it: open it on the room, chat, choose a file.
    async demoCase(browser, role, room) {
        const steps = fs.readFileSync(path.join(here, 'pages', 'demo.js'), 'utf8');
        const url = `http://${HOST}:${PORTS.signal}/?room=${room}&role=${ROLES[role]}&ice=0`;
        await browser.navigate(url);
        const step = async (name, p, ms) => {
            const r = JSON.parse(await browser.evaluate(`(${steps}).${name}(${JSON.stringify(p)})`,
                                                        ms));
            if (!r.ok)
                throw new Error(`${name}: ${r.error}`);
            return r.detail;
        };
        const chat = await step('chat', { browser: browser.name, room }, 40000);
        const data = crypto.randomBytes(DEMO_FILE_SIZE);
        const name = `tern-demo-${browser.name}-${role}.bin`;
        const file = path.join(this.tmp, name);
        fs.writeFileSync(file, data);
        const sha256 = crypto.createHash('sha256').update(data).digest('hex');
        await browser.setFile('#file-input', file);
        const files = await step('files', { name, size: data.length, sha256, timeout: 60000 },
                                 90000);
        fs.rmSync(file, { force: true });
        return `${chat}; ${files}`;
    }

    selected(browser, role, name) {
        const c = CASES.find((k) => k.name === name);
        if (c?.bothOffer && role !== 'browser-offers')
            return false;
        return !this.opts.only || new RegExp(this.opts.only).test(`${browser} ${role} ${name}`);
    }

    async launch(name, mdns = false) {
        const log = fs.createWriteStream(this.logPath(`${name}${mdns ? '-mdns' : ''}.log`));
        // TERN_CHROMIUM / TERN_FIREFOX name another executable (default: Debian's).
        const exe = process.env[`TERN_${name.toUpperCase()}`] || undefined;
        const b = await launchers[name]({ exe, tmp: this.tmp, log, port: PORTS[name], mdns });
        b.log = log;
        return b;
    }

    // Two browsers in one room through tern-signal, each offering once: checks the harness,
    // the pages and the signaling server without tern's stack in the path.
    async smoke(browsers) {
        if (browsers.length < 2)
            return;
        for (const [a, b] of [browsers, browsers.slice().reverse()]) {
            const role = `${a.name}-offers`;
            if (!this.selected(`${a.name}+${b.name}`, role, 'browser-smoke'))
                continue;
            const t0 = performance.now();
            const room = `smoke-${a.name}-${process.pid}`;
            let error = null, detail = '';
            try {
                await Promise.all([a.navigate(this.pageUrl), b.navigate(this.pageUrl)]);
                const p = { signal: this.signalUrl, room, firstLabel: 'smoke', timeout: 30000 };
                const ra = a.evaluate(
                    `T.run('browser-smoke', ${JSON.stringify({ ...p, role: 'offer' })})`, 60000);
                // The offerer joins first and waits for the answerer's "join".
                await new Promise((r) => setTimeout(r, 300));
                const rb = b.evaluate(
                    `T.run('browser-smoke', ${JSON.stringify({ ...p, role: 'answer' })})`, 60000);
                const [va, vb] = (await Promise.all([ra, rb])).map((v) => JSON.parse(v));
                if (!va.ok || !vb.ok)
                    throw new Error(`${a.name}: ${va.error ?? 'ok'}; ${b.name}: ${vb.error ?? 'ok'}`);
                detail = va.detail;
            } catch (e) {
                error = e.message;
            }
            for (const x of browsers)
                await x.navigate('about:blank').catch(() => {});
            this.report(!error, `${a.name}+${b.name}`, role, 'browser-smoke',
                        (performance.now() - t0) / 1000, error ?? detail);
        }
    }

    // Make the namespace look like a host on a LAN: a veth pair (both ends inside the
    // namespace, so nothing leaves it), an address on one end, the default route and the
    // multicast route through it. Browsers without the media permission gather only the
    // default route's address, and hide it behind an mDNS name (TESTING.md).
    async setupVeth() {
        const ip = (...args) => new Promise((resolve, reject) => {
            const p = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
            let err = '';
            p.stderr.on('data', (d) => (err += d));
            p.on('exit', (code) => (code === 0 ? resolve() : reject(
                new Error(`ip ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
        });
        await ip('link', 'add', 'tb0', 'type', 'veth', 'peer', 'name', 'tb1');
        for (const dev of ['tb0', 'tb1'])
            fs.writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
        await ip('addr', 'add', `${MDNS_ADDR}/24`, 'dev', 'tb0');
        await ip('link', 'set', 'tb0', 'up');
        await ip('link', 'set', 'tb1', 'up');
        await ip('route', 'replace', 'default', 'dev', 'tb0', 'src', MDNS_ADDR);
        await ip('route', 'add', '224.0.0.0/4', 'dev', 'tb0');
    }

    async mdnsPhase(names, cases) {
        const todo = names.flatMap((b) => this.opts.roles.flatMap(
            (r) => cases.filter((c) => this.selected(b, r, c.name)).map((c) => [b, r, c])));
        if (!todo.length)
            return;
        try {
            await this.setupVeth();
        } catch (e) {
            this.report(false, 'all', '-', 'mdns network setup', 0, e.message);
            return;
        }
        this.mdnsMode = true;
        for (const name of names) {
            let b;
            try {
                b = await this.launch(name, true);
            } catch (e) {
                this.report(false, name, '-', 'launch (mDNS on)', 0, e.message);
                continue;
            }
            for (const [bn, role, c] of todo)
                if (bn === name)
                    await this.runCase(b, role, c);
            await b.close();
            b.log.end();
        }
    }

    async main() {
        const o = this.opts;
        if (o.list) {
            for (const b of o.browsers)
                for (const r of o.roles)
                    for (const c of CASES)
                        if (this.selected(b, r, c.name))
                            console.log(`${b} ${r} ${c.name}`);
            return 0;
        }
        this.say(`# browser suite in namespace ${o.netns ?? '(none)'}, logs in ${o.logs}`);
        this.http = await servePages(path.join(here, 'pages'));
        try {
            await this.startSignal();
        } catch (e) {
            this.report(false, 'all', '-', 'start tern-signal', 0, e.message);
            return this.finish();
        }
        // A browser no selected case needs (--only) is not started.
        const needed = (name) => o.browsers.some((other) => other !== name &&
            this.selected(`${name}+${other}`, `${name}-offers`, 'browser-smoke') ||
            this.selected(`${other}+${name}`, `${other}-offers`, 'browser-smoke')) ||
            CASES.some((c) => o.roles.some((r) => this.selected(name, r, c.name)));
        const browsers = [];
        for (const name of o.browsers.filter(needed)) {
            if (!launchers[name]) {
                this.report(false, name, '-', 'launch', 0, 'unknown browser');
                continue;
            }
            const t0 = performance.now();
            try {
                const b = await this.launch(name);
                browsers.push(b);
                this.say(`# ${name} started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
            } catch (e) {
                // A missing browser fails the suite, it is never skipped.
                this.report(false, name, '-', 'launch', (performance.now() - t0) / 1000,
                            e.message);
            }
        }
        await this.smoke(browsers);
        // A native program not given (not built yet in this tree: CMake passes what exists)
        // leaves its cases out of the run, said here; a program given but missing fails them.
        for (const kind of ['echo', 'peer', 'send', 'recv'])
            if (!o[kind])
                this.say(`# no --${kind}: its cases are not part of this run`);
        if (!o.web)
            this.say('# no --web: the demo page case is not part of this run');
        const cases = CASES.filter((c) => o[c.native] && (!(c.demo || c.files) || o.web));
        for (const b of browsers)
            for (const role of o.roles)
                for (const c of cases)
                    if (!c.mdns && this.selected(b.name, role, c.name))
                        await this.runCase(b, role, c);
        for (const b of browsers) {
            await b.close();
            b.log.end();
        }
        // Last, as it changes the namespace's default route.
        await this.mdnsPhase(browsers.map((b) => b.name), cases.filter((c) => c.mdns));
        return this.finish();
    }

    async finish() {
        await Promise.all([...started].map((p) => p.stop()));
        this.http?.close();
        fs.rmSync(this.tmp, { recursive: true, force: true });
        for (const f of this.flaky)
            this.say(`# flaky (passed on a retry): ${f}`);
        this.say(`# browser suite: ${this.n} cases, ${this.flaky.length} passed only on a retry`);
        this.say(`${this.passed} passed, ${this.failed} failed`);
        return this.failed || !this.n ? 1 : 0;
    }
}

const run = new Run(parseArgs(process.argv.slice(2)));
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
        await Promise.all([...started].map((p) => p.stop(500)));
        process.exit(130);
    });
}
run.main().then((code) => process.exit(code), (e) => {
    console.log(`not ok - driver: ${e.stack || e}`);
    process.exit(1);
});
