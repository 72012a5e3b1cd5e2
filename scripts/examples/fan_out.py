"""Fan-out: a parent task adds sub-tasks pinned to devices, polls them, submits what they found.

Input of the parent: `{"urls": [...], "devices": [remote_device_id, ...]}` (one sub-task per URL,
pinned round-robin to the devices; no devices: any free device). Each sub-task runs this same
script with `{"url": ...}`: it opens the page and returns its title.
"""

TERMINAL = ("confirmed", "failed", "declined", "deleted")


async def main(agent):
    job = agent.utils.job
    task = await job.get_current_task()
    if "url" in task.job_proof:
        await agent.actions.browse(task.job_proof["url"])
        title = await agent.actions.evaluate("document.title")
        return {"url": task.job_proof["url"], "title": title}

    urls = task.job_proof["urls"]
    devices = task.job_proof.get("devices") or [None]
    ids = []
    for i, url in enumerate(urls):
        added = await job.add_sub_tasks(
            {"job_variables": [{"url": url}], "remote_device_id": devices[i % len(devices)]}
        )
        if not added.success:
            raise RuntimeError(added.error)
        ids += [t["planned_task_id"] for t in added.inserted_ids]

    while True:
        status = await job.get_sub_tasks(ids)
        if not status.success:
            raise RuntimeError(status.error)
        if all(t["status"] in TERMINAL for t in status.tasks.values()):
            break
        await agent.utils.sleep_random(100, 300)

    results = [status.tasks[i] for i in ids]
    await job.submit_task(
        "success",
        {
            "results": [r["job_proof"] for r in results if r["status"] == "confirmed"],
            "statuses": [r["status"] for r in results],
        },
        True,
    )
