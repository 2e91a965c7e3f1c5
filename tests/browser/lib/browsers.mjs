// SPDX-License-Identifier: MIT
//
// Launching headless Chromium and Firefox ESR and driving one tab of each: navigate to a URL,
// evaluate an expression (awaiting its promise), collect the page's console. Chromium is driven
// over the Chrome DevTools Protocol, Firefox over its built-in WebDriver BiDi, both through
// Node's own WebSocket client, so the suite needs no npm package at all: playwright-core could
// drive Chromium but not Debian's firefox-esr (it needs a patched Firefox), so a protocol client
// was needed anyway, and the CDP one is as small as the BiDi one. Both browsers expose the same
// three calls (navigate, evaluate, close) to the driver.
//
// Flags and preferences follow /work/shared/TESTING.md: loopback candidates need a camera/mic
// permission in both browsers, mDNS host names are turned off (unless `mdns` is asked for),
// and everything that phones home is disabled (the browser runs in a lo-only namespace anyway).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

// A JSON-over-WebSocket RPC connection: {id, method, params} out, {id, result|error} back, and
// events (messages without id) to listeners. CDP and BiDi share this shape.
class Rpc {
    constructor(ws) {
        this.ws = ws;
        this.nextId = 1;
        this.pending = new Map();
        this.listeners = [];
        this.closed = false;
        ws.addEventListener('message', (e) => this.dispatch(JSON.parse(e.data)));
        ws.addEventListener('close', () => {
            this.closed = true;
            for (const { reject } of this.pending.values())
                reject(new Error('browser connection closed'));
            this.pending.clear();
        });
    }

    static open(url, timeoutMs = 10000) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            const timer = setTimeout(() => reject(new Error(`no answer from ${url}`)), timeoutMs);
            ws.addEventListener('open', () => {
                clearTimeout(timer);
                resolve(new Rpc(ws));
            });
            ws.addEventListener('error', (e) => {
                clearTimeout(timer);
                reject(new Error(`cannot connect to ${url}: ${e.message || 'error'}`));
            });
        });
    }

    dispatch(msg) {
        if (msg.id !== undefined && this.pending.has(msg.id)) {
            const { resolve, reject, method } = this.pending.get(msg.id);
            this.pending.delete(msg.id);
            // CDP reports {error:{message}}, BiDi {type:'error', error, message}.
            if (msg.error !== undefined || msg.type === 'error')
                reject(new Error(`${method}: ${msg.message || msg.error.message || msg.error}`));
            else
                resolve(msg.result);
            return;
        }
        for (const fn of this.listeners)
            fn(msg);
    }

    call(method, params = {}, extra = {}) {
        if (this.closed)
            return Promise.reject(new Error('browser connection closed'));
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, method });
            this.ws.send(JSON.stringify({ id, method, params, ...extra }));
        });
    }

    close() {
        try {
            this.ws.close();
        } catch {
            /* already closed */
        }
    }
}

// Wait until `proc` writes a line matching `re` to stderr; resolve with the match.
function waitForLine(proc, re, timeoutMs, name) {
    return new Promise((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`${name} did not start within ${timeoutMs} ms`));
        }, timeoutMs);
        const onData = (chunk) => {
            buf += chunk.toString();
            const m = buf.match(re);
            if (m) {
                cleanup();
                resolve(m);
            }
            if (buf.length > 65536)
                buf = buf.slice(-4096);
        };
        const onExit = (code, sig) => {
            cleanup();
            reject(new Error(`${name} exited (${code ?? sig}) before it was ready`));
        };
        const onError = (e) => {
            cleanup();
            reject(new Error(`${name} cannot be started: ${e.message}`));
        };
        const cleanup = () => {
            clearTimeout(timer);
            proc.stderr.off('data', onData);
            proc.off('exit', onExit);
            proc.off('error', onError);
        };
        proc.stderr.on('data', onData);
        proc.on('exit', onExit);
        proc.on('error', onError);
    });
}

// Evaluate with a deadline on the driver's side too, so a hung page cannot hang the suite.
function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

class Browser {
    constructor(name, proc, dir, log) {
        this.name = name;
        this.proc = proc;
        this.dir = dir;
        this.log = log;
        // 'error' instead of 'exit' when the program cannot be started at all (not installed).
        this.exited = new Promise((resolve) => {
            proc.on('exit', resolve);
            proc.on('error', (e) => {
                this.spawnError = e;
                resolve();
            });
        });
        proc.stdout.on('data', (d) => log.write(d));
        proc.stderr.on('data', (d) => log.write(d));
    }

    // Stop the browser: ask politely, then SIGKILL its own PID. Leftover helper processes die
    // with the namespace's cleanup in run.sh (by PID, from `ip netns pids`).
    async close() {
        try {
            await withTimeout(this.quit(), 3000, `${this.name} quit`);
        } catch {
            /* killed below */
        }
        this.rpc?.close();
        const done = await withTimeout(this.exited.then(() => true), 5000, 'exit').catch(
            () => false);
        if (!done) {
            try {
                process.kill(this.proc.pid, 'SIGKILL');
            } catch {
                /* gone */
            }
            await this.exited;
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

const CHROMIUM_FEATURES_OFF = [
    'NetworkTimeServiceQuerying', 'OptimizationHints', 'Translate', 'MediaRouter',
    'WebRtcHideLocalIpsWithMdns',
];

class Chromium extends Browser {
    static async launch({ exe = '/usr/bin/chromium', tmp, log, port, mdns = false }) {
        const dir = fs.mkdtempSync(path.join(tmp, 'chromium-'));
        const features = mdns ? CHROMIUM_FEATURES_OFF.filter((f) => !f.startsWith('WebRtc'))
                              : CHROMIUM_FEATURES_OFF;
        const args = [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--no-default-browser-check', '--disable-dev-shm-usage',
            `--user-data-dir=${dir}/profile`,
            // Chromium honours only the last --disable-features: one switch with all of them.
            `--disable-features=${features.join(',')}`,
            '--component-updater=url-source=http://127.0.0.1:9/x',
            `--remote-debugging-port=${port}`, '--remote-allow-origins=*',
        ];
        // Loopback candidates need both the flag and a media permission; with the permission
        // Chromium also stops hiding host addresses behind mDNS names. The mDNS case wants the
        // default: no permission, names on, a non-loopback address.
        if (!mdns)
            args.push('--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
                      '--use-fake-device-for-media-stream');
        args.push('about:blank');
        const proc = spawn(exe, args, {
            env: { ...process.env, HOME: dir },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        const b = new Chromium('chromium', proc, dir, log);
        try {
            const m = await waitForLine(proc, /DevTools listening on (ws:\/\/\S+)/, 30000,
                                        'chromium');
            b.rpc = await Rpc.open(m[1]);
            b.rpc.listeners.push((msg) => b.onEvent(msg));
            const { targetInfos } = await b.rpc.call('Target.getTargets');
            const page = targetInfos.find((t) => t.type === 'page');
            if (!page)
                throw new Error('chromium: no page target');
            const { sessionId } =
                await b.rpc.call('Target.attachToTarget', { targetId: page.targetId, flatten: true });
            b.session = sessionId;
            await b.page('Page.enable');
            await b.page('Runtime.enable');
        } catch (e) {
            await b.close();
            throw e;
        }
        return b;
    }

    page(method, params = {}) {
        return this.rpc.call(method, params, { sessionId: this.session });
    }

    onEvent(msg) {
        if (msg.sessionId !== this.session)
            return;
        if (msg.method === 'Runtime.consoleAPICalled') {
            const text = msg.params.args.map((a) => a.value ?? a.description ?? a.type).join(' ');
            this.log.write(`[console.${msg.params.type}] ${text}\n`);
        } else if (msg.method === 'Runtime.exceptionThrown') {
            this.log.write(`[exception] ${msg.params.exceptionDetails.exception?.description ??
                                          msg.params.exceptionDetails.text}\n`);
        } else if (msg.method === 'Page.loadEventFired' && this.onLoad) {
            this.onLoad();
        }
    }

    async navigate(url) {
        const loaded = new Promise((resolve) => (this.onLoad = resolve));
        const r = await this.page('Page.navigate', { url });
        if (r.errorText)
            throw new Error(`navigate ${url}: ${r.errorText}`);
        await withTimeout(loaded, 15000, `load ${url}`);
        this.onLoad = null;
    }

    async evaluate(expression, timeoutMs) {
        const r = await withTimeout(
            this.page('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }),
            timeoutMs, 'evaluate');
        if (r.exceptionDetails)
            throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
        return r.result.value;
    }

    // Choose a file in an <input type=file>, as the user's file picker would.
    async setFile(selector, file) {
        const { root } = await this.page('DOM.getDocument', { depth: 0 });
        const { nodeId } = await this.page('DOM.querySelector', { nodeId: root.nodeId, selector });
        if (!nodeId)
            throw new Error(`no element ${selector}`);
        await this.page('DOM.setFileInputFiles', { nodeId, files: [file] });
    }

    quit() {
        return this.rpc.call('Browser.close');
    }
}

// Preferences of the Firefox profile (TESTING.md): loopback candidates with a media permission,
// no mDNS names, page console on stdout, and nothing that phones home.
function firefoxPrefs(mdns) {
    const prefs = {
        'media.peerconnection.ice.loopback': !mdns,
        'media.peerconnection.ice.obfuscate_host_addresses': mdns,
        'permissions.default.camera': mdns ? 0 : 1,
        'permissions.default.microphone': mdns ? 0 : 1,
        'media.navigator.permission.disabled': false,
        'media.navigator.streams.fake': true,
        'devtools.console.stdout.content': true,
        'app.update.enabled': false,
        'app.update.auto': false,
        'app.normandy.enabled': false,
        'app.normandy.api_url': '',
        'app.shield.optoutstudies.enabled': false,
        'datareporting.healthreport.uploadEnabled': false,
        'datareporting.policy.dataSubmissionEnabled': false,
        'toolkit.telemetry.enabled': false,
        'toolkit.telemetry.unified': false,
        'toolkit.telemetry.server': 'data:,',
        'browser.safebrowsing.malware.enabled': false,
        'browser.safebrowsing.phishing.enabled': false,
        'browser.safebrowsing.downloads.enabled': false,
        'browser.safebrowsing.provider.google4.updateURL': '',
        'browser.safebrowsing.provider.mozilla.updateURL': '',
        'network.captive-portal-service.enabled': false,
        'network.connectivity-service.enabled': false,
        'network.dns.disablePrefetch': true,
        'network.prefetch-next': false,
        'network.http.speculative-parallel-limit': 0,
        'network.http.http3.enable': false,
        'network.trr.mode': 5,
        'services.settings.server': 'data:,',
        'browser.shell.checkDefaultBrowser': false,
        'browser.startup.homepage_override.mstone': 'ignore',
        'browser.aboutwelcome.enabled': false,
        'extensions.update.enabled': false,
        'extensions.getAddons.cache.enabled': false,
        'extensions.blocklist.enabled': false,
        'browser.search.update': false,
        'browser.newtabpage.enabled': false,
        'browser.ping-centre.telemetry': false,
        'dom.push.connection.enabled': false,
        'geo.provider.network.url': '',
        'media.gmp-manager.url': '',
        'media.gmp-gmpopenh264.enabled': false,
        'media.peerconnection.ice.tcp': false,
        'remote.prefs.recommended': true,
    };
    return Object.entries(prefs)
        .map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});\n`)
        .join('');
}

class Firefox extends Browser {
    static async launch({ exe = '/usr/bin/firefox-esr', tmp, log, port, mdns = false }) {
        const dir = fs.mkdtempSync(path.join(tmp, 'firefox-'));
        fs.mkdirSync(`${dir}/profile`);
        fs.writeFileSync(`${dir}/profile/user.js`, firefoxPrefs(mdns));
        const proc = spawn(exe, ['--headless', '--no-remote', '--new-instance', '--profile',
                                 `${dir}/profile`, '--remote-debugging-port', String(port),
                                 'about:blank'], {
            env: {
                ...process.env, HOME: dir, MOZ_CRASHREPORTER_DISABLE: '1',
                // Release builds ignore services.settings.server without this.
                MOZ_REMOTE_SETTINGS_DEVTOOLS: '1',
            },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        const b = new Firefox('firefox', proc, dir, log);
        try {
            const m = await waitForLine(proc, /WebDriver BiDi listening on (ws:\/\/\S+)/, 60000,
                                        'firefox');
            b.rpc = await Rpc.open(`${m[1].replace(/\/$/, '')}/session`);
            b.rpc.listeners.push((msg) => b.onEvent(msg));
            await b.rpc.call('session.new', { capabilities: {} });
            const { contexts } = await b.rpc.call('browsingContext.getTree', {});
            if (!contexts.length)
                throw new Error('firefox: no browsing context');
            b.context = contexts[0].context;
            await b.rpc.call('session.subscribe', { events: ['log.entryAdded'] });
        } catch (e) {
            await b.close();
            throw e;
        }
        return b;
    }

    onEvent(msg) {
        if (msg.method === 'log.entryAdded')
            this.log.write(`[console.${msg.params.level}] ${msg.params.text}\n`);
    }

    async navigate(url) {
        await withTimeout(this.rpc.call('browsingContext.navigate',
                                        { context: this.context, url, wait: 'complete' }),
                          15000, `load ${url}`);
    }

    async evaluate(expression, timeoutMs) {
        const r = await withTimeout(this.rpc.call('script.evaluate', {
            expression, target: { context: this.context }, awaitPromise: true,
            resultOwnership: 'none',
        }), timeoutMs, 'evaluate');
        if (r.type === 'exception')
            throw new Error(r.exceptionDetails.text);
        return r.result.value;
    }

    async setFile(selector, file) {
        const r = await this.rpc.call('script.evaluate', {
            expression: `document.querySelector(${JSON.stringify(selector)})`,
            target: { context: this.context }, awaitPromise: false, resultOwnership: 'root',
        });
        if (r.type !== 'success' || r.result.type !== 'node')
            throw new Error(`no element ${selector}`);
        await this.rpc.call('input.setFiles', {
            context: this.context, element: { sharedId: r.result.sharedId }, files: [file],
        });
    }

    async quit() {
        await this.rpc.call('browser.close', {}).catch(() => {});
    }
}

export const launchers = { chromium: Chromium.launch, firefox: Firefox.launch };
export { withTimeout };
