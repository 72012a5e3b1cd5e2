"""A data-dump writer: screenshots a page and writes a lead into a separate data-dump job.

Input: `{"url": ..., "dump_job_id": ...}` (no dump_job_id: this task's own job, which works as a
data-dump target when it has an automation_id and no planned tasks, as under `script run`). The
running task itself ends with its own result; the dump does not touch it.
"""


async def main(agent):
    args = agent.arguments.job_variables
    info = await agent.info.get_automation_info()
    target = args.get("dump_job_id") or info["job_id"]
    await agent.actions.browse(args["url"])
    title = await agent.actions.evaluate("document.title")
    shot = await agent.actions.screenshot(1080, 1920, 80)
    dumped = await agent.utils.job.submit_task_to_another_job(
        target,
        {"title": title, "url": args["url"]},
        "pending",
        [{"name": "snapshot", "extension": ".jpg", "base64Data": shot.screenshot}],
    )
    if not dumped.success:
        return {"dumped": False, "error": dumped.error}
    return {"dumped": True, "job_task_id": dumped.job_task_id, "queued": dumped.queued}
