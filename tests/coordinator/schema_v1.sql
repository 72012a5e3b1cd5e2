-- The coordinator's schema before migrations (SQLite user_version 1), as coordinator/db.py had it:
-- revision 0001. Tests make databases of that coordinator from it.
CREATE TABLE IF NOT EXISTS scripts (
    sha256 TEXT PRIMARY KEY,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    parameters TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    automation_id TEXT,
    owner TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'devices_automation',
    allow_sub_tasks INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_shares (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    owner TEXT NOT NULL,
    access TEXT NOT NULL,
    PRIMARY KEY (job_id, owner)
);
CREATE TABLE IF NOT EXISTS job_versions (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    version INTEGER NOT NULL,
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, version)
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
    input TEXT NOT NULL,
    pin_device_id TEXT,
    state TEXT NOT NULL,
    host_id TEXT,
    device_id TEXT,
    progress TEXT,
    progress_seq INTEGER,
    result TEXT,
    failure_reason TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    timeout_s REAL NOT NULL,
    parent_task_id TEXT,
    origin TEXT NOT NULL DEFAULT 'run',
    automation_variables TEXT,
    waiting INTEGER NOT NULL DEFAULT 0,
    waiting_since REAL,
    checkpoint TEXT,
    created_at REAL NOT NULL,
    assigned_at REAL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state, created_at);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_host ON tasks(host_id, state);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks(state, pin_device_id, created_at);
CREATE INDEX IF NOT EXISTS tasks_device ON tasks(device_id, state);
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(job_id, waiting, waiting_since);
CREATE TABLE IF NOT EXISTS planned_tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    parent_task_id TEXT NOT NULL,
    input TEXT NOT NULL,
    pin_device_id TEXT,
    timeout_s REAL NOT NULL,
    job_task_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS planned_open ON planned_tasks(job_task_id, created_at);
CREATE INDEX IF NOT EXISTS planned_parent ON planned_tasks(parent_task_id);
CREATE TABLE IF NOT EXISTS dumps (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    job_task_id TEXT NOT NULL REFERENCES tasks(id),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    finish INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    name TEXT NOT NULL,
    extension TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_task ON files(task_id, created_at);
CREATE TABLE IF NOT EXISTS hosts (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_seen_at REAL
);
CREATE TABLE IF NOT EXISTS devices (
    remote_device_id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    properties TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
