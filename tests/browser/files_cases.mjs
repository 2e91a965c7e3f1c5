// SPDX-License-Identifier: MIT
//
// The browser suite's file-transfer cases (examples/web/FILE-PROTOCOL.md, version 2): the demo
// page (examples/web, served by tern-signal) against tern-recv and tern-send, used as a person
// would (the file chosen through the page's file input), in both roles.
//
//   files-to-recv           the page sends a file to tern-recv; the file on disk is compared
//   files-from-send         tern-send sends a file to the page; the page's saved bytes compared
//   files-resume-to-recv    tern-recv is killed (SIGKILL) with a third of the file; a second
//                           tern-recv in the same folder takes the page's next try from there
//   files-resume-from-send  tern-send is killed with a third at the page; a second tern-send
//                           continues after what the page kept
//
// Every SHA-256 is checked against the one computed here from the file on disk (Node's crypto),
// not with the page's own code. driver.mjs runs these through filesCase (the helpers it hands
// in: Proc, describeStatus, badExit, ROLES).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const FILE_CASES = [
    { name: 'files-to-recv', native: 'recv', files: true },
    { name: 'files-from-send', native: 'send', files: true },
    { name: 'files-resume-to-recv', native: 'recv', files: true, resume: true },
    { name: 'files-resume-from-send', native: 'send', files: true, resume: true },
];

// Several 64 KiB messages, a short last one, past the page's 1 MiB high-water mark.
const SIZE = 2 * 1024 * 1024 + 12345;
// Large enough that a third of it is seen before the end, at loopback speed.
const RESUME_SIZE = 48 * 1024 * 1024 + 777;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sha256File(file) {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function fileSize(file) {
    try {
        return fs.statSync(file).size;
    } catch {
        return -1;
    }
}

class FilesCase {
    constructor(run, browser, role, room, c, base, h) {
        Object.assign(this, { run, browser, role, room, c, base, h });
        this.natives = [];
        this.dir = fs.mkdtempSync(path.join(run.tmp, `${c.name}-`));
        this.out = path.join(this.dir, 'out');
        fs.mkdirSync(this.out);
        this.url = `${run.signalUrl}/ws/${room}`;
        this.steps = fs.readFileSync(path.join(here, 'pages', 'files.js'), 'utf8');
    }

    async step(name, p, ms) {
        const r = JSON.parse(await this.browser.evaluate(`(${this.steps}).${name}(${JSON.stringify(p)})`,
                                                         ms ?? 120000));
        if (!r.ok)
            throw new Error(`${name}: ${r.error}`);
        return r.detail;
    }

    makeFile(name, size) {
        const file = path.join(this.dir, name);
        fs.writeFileSync(file, crypto.randomBytes(size));
        return { file, name, size, sha256: sha256File(file) };
    }

    // A native program in the room, with this case's role; the first logs to BASE.native.log
    // (kept by the driver when the case fails), the next ones to BASE.native-N.log.
    async start(kind, extra) {
        const exe = kind === 'recv' ? this.run.opts.recv : this.run.opts.send;
        const prog = kind === 'recv' ? 'tern-recv' : 'tern-send';
        if (!exe || !fs.existsSync(exe))
            throw new Error(`${prog} not found (${exe ?? `no --${kind} given`})`);
        const n = this.natives.length;
        const log = this.run.logPath(n ? `${this.base}.native-${n + 1}.log` : `${this.base}.native.log`);
        const args = ['--signal', this.url, this.role === 'native-offers' ? '--offer' : '--answer',
                      '--loopback', ...extra];
        const p = new this.h.Proc(prog, exe, args, log, { TERN_LOG: process.env.TERN_LOG ?? 'info' });
        this.natives.push(p);
        // The first joins before the page (the protocol's roles); later ones join a room the
        // page is in, so wait for the page to connect to them instead.
        if (n === 0)
            await this.run.waitInRoom(this.room, p);
        return p;
    }

    recvArgs() {
        return ['--out', this.out, '--stay', '--quiet'];
    }

    async openPage() {
        const url = `${this.run.signalUrl.replace(/^ws:/, 'http:')}/?room=${this.room}` +
                    `&role=${this.h.ROLES[this.role]}&ice=0`;
        await this.browser.navigate(url);
        return this.step('ready', { timeout: 20000 }, 30000);
    }

    async kill(p, until) {
        const end = Date.now() + 120000;
        while (!(await until())) {
            if (p.status)
                throw new Error(`${p.name} ended before it could be cut (${this.h.describeStatus(p.status)})`);
            if (Date.now() > end)
                throw new Error('the transfer never reached a third');
            await sleep(5);
        }
        process.kill(p.proc.pid, 'SIGKILL');
        await p.exited;
    }

    check(cond, what) {
        if (!cond)
            throw new Error(what);
    }

    checkSent(t, f) {
        this.check(t.state === 'done' && t.ok, `the page's sending ended ${t.state}: ${t.error}`);
        this.check(t.sha256 === f.sha256 && t.remoteSha256 === f.sha256,
                   `the page's hashes ${t.sha256} / receiver ${t.remoteSha256}, want ${f.sha256}`);
        const disk = path.join(this.out, f.name);
        this.check(fileSize(disk) === f.size && sha256File(disk) === f.sha256,
                   `tern-recv's file is ${fileSize(disk)} bytes, not the one sent`);
    }

    checkReceived(t, f) {
        this.check(t.state === 'done' && t.ok, `the page's reception ended ${t.state}: ${t.error}`);
        this.check(t.bytes === f.size && t.sha256 === f.sha256 && t.savedSha256 === f.sha256,
                   `the page holds ${t.bytes} bytes, SHA-256 ${t.sha256}, saved ${t.savedSha256}; ` +
                   `want ${f.size}, ${f.sha256}`);
    }

    async toRecv() {
        const f = this.makeFile(`to-recv-${this.browser.name}.bin`, SIZE);
        const recv = await this.start('recv', this.recvArgs());
        const peer = await this.openPage();
        await this.browser.setFile('#file-input', f.file);
        const t = await this.step('transfer', { name: f.name, direction: 'send' });
        await recv.waitForLine(new RegExp(`^received ${f.name} ${f.size} ${f.sha256}$`, 'm'), 10000,
                               'tern-recv to report the file');
        this.checkSent(t, f);
        return `${f.size} bytes to tern-recv ${peer}, SHA-256 ${f.sha256.slice(0, 16)}... on disk`;
    }

    async fromSend() {
        const f = this.makeFile(`from-send-${this.browser.name}.bin`, SIZE);
        const send = await this.start('send', [f.file, '--quiet']);
        const peer = await this.openPage();
        const t = await this.step('transfer', { name: f.name, direction: 'receive' });
        this.checkReceived(t, f);
        const s = await send.exited;
        this.check(s.code === 0, `tern-send ended ${this.h.describeStatus(s)}`);
        this.check(send.out.includes(`sent ${f.name} ${f.size} ${f.sha256}`), 'tern-send did not report it sent');
        return `${f.size} bytes from tern-send ${peer}, saved bytes' SHA-256 ${f.sha256.slice(0, 16)}...`;
    }

    async resumeToRecv() {
        const f = this.makeFile(`resume-to-recv-${this.browser.name}.bin`, RESUME_SIZE);
        const part = path.join(this.out, `.${f.name}.tern-part`);
        const first = await this.start('recv', this.recvArgs());
        await this.openPage();
        await this.browser.setFile('#file-input', f.file);
        await this.kill(first, async () => fileSize(part) >= f.size / 3);
        const cut = await this.step('transfer', { name: f.name, direction: 'send' });
        this.check(cut.state === 'failed', `the page's first try ended ${cut.state}`);
        await this.step('noPeer', {});
        const kept = fileSize(part);
        const second = await this.start('recv', this.recvArgs());
        const peer = await this.step('ready', { timeout: 20000 }, 30000);
        await this.browser.setFile('#file-input', f.file);
        const t = await this.step('transfer', { name: f.name, direction: 'send', after: cut.id });
        this.checkSent(t, f);
        this.check(t.resumedFrom === kept, `the page resumed at ${t.resumedFrom}, tern-recv kept ${kept}`);
        this.check(second.out.includes(`resumed ${f.name} at ${kept}`), 'tern-recv did not report the resume');
        return `cut at ${kept} of ${f.size} bytes (tern-recv killed), resumed by the page to tern-recv ` +
               `${peer}, SHA-256 on disk ${f.sha256.slice(0, 16)}...`;
    }

    // The page's newest transfer of a name and direction, now (no waiting); null if none.
    async pageTransfer(name, direction) {
        const expr = `JSON.stringify(window.tern.status().transfers.filter((t) => t.name === ${JSON.stringify(name)} ` +
                     `&& t.direction === ${JSON.stringify(direction)}).pop() || null)`;
        return JSON.parse(await this.browser.evaluate(expr, 10000));
    }

    async resumeFromSend() {
        const f = this.makeFile(`resume-from-send-${this.browser.name}.bin`, RESUME_SIZE);
        const first = await this.start('send', [f.file, '--quiet']);
        await this.openPage();
        let at = 0;
        await this.kill(first, async () => {
            const t = await this.pageTransfer(f.name, 'receive');
            at = t ? t.bytes : 0;
            return at >= f.size / 3;
        });
        const cut = await this.step('transfer', { name: f.name, direction: 'receive' });
        this.check(cut.state === 'failed', `the page's first reception ended ${cut.state}`);
        await this.step('noPeer', {});
        const second = await this.start('send', [f.file, '--quiet']);
        const peer = await this.step('ready', { timeout: 20000 }, 30000);
        const t = await this.step('transfer', { name: f.name, direction: 'receive', after: cut.id });
        this.checkReceived(t, f);
        this.check(t.resumedFrom >= cut.bytes && t.resumedFrom > 0,
                   `the page resumed at ${t.resumedFrom}, it had ${cut.bytes}`);
        const s = await second.exited;
        this.check(s.code === 0, `the second tern-send ended ${this.h.describeStatus(s)}`);
        this.check(second.out.includes(`resumed ${f.name} at ${t.resumedFrom}`),
                   'tern-send did not report the resume');
        return `cut at ${cut.bytes} of ${f.size} bytes (tern-send killed when the page showed ${at}), ` +
               `resumed from tern-send ${peer}, saved bytes' SHA-256 ${f.sha256.slice(0, 16)}...`;
    }

    async run1() {
        switch (this.c.name) {
        case 'files-to-recv': return this.toRecv();
        case 'files-from-send': return this.fromSend();
        case 'files-resume-to-recv': return this.resumeToRecv();
        case 'files-resume-from-send': return this.resumeFromSend();
        default: throw new Error(`unknown case ${this.c.name}`);
        }
    }

    // Stop what is still running: a native peer that ends badly fails the case.
    async cleanup(error) {
        for (const p of this.natives) {
            const already = !!p.status;
            const s = await p.stop();
            const killedHere = s.signal === 'SIGKILL';
            if (!error && !killedHere && this.h.badExit(s, !already))
                error = `${p.name} ended badly (${this.h.describeStatus(s)}); see its log`;
        }
        if (!error && !this.run.opts.keep)
            for (let n = 2; n <= this.natives.length; n++)
                fs.rmSync(this.run.logPath(`${this.base}.native-${n}.log`), { force: true });
        fs.rmSync(this.dir, { recursive: true, force: true });
        return error;
    }
}

// Run one case; returns {error, detail}.
export async function filesCase(run, browser, role, room, c, base, helpers) {
    const fc = new FilesCase(run, browser, role, room, c, base, helpers);
    let error = null, detail = '';
    try {
        detail = await fc.run1();
    } catch (e) {
        error = e.message;
    }
    await browser.navigate('about:blank').catch(() => {});
    error = await fc.cleanup(error);
    return { error, detail };
}
