namespace RinServe.Jobs;

/// <summary>How the <see cref="BatchingWorker"/> splits the jobs it took into sampler batches.</summary>
public static class BatchPlan
{
    /// <summary>
    /// Jobs taken together, as sampler batches in the order taken: only jobs with equal settings share a batch, and a
    /// batch holds at most <paramref name="maxRows"/> network rows unless a single job alone has more.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<LeasedJob>> Split(IEnumerable<LeasedJob> taken, int maxRows)
    {
        var batches = new List<IReadOnlyList<LeasedJob>>();
        foreach (var group in taken.GroupBy(j => j.Job.Spec.Settings))
        {
            var batch = new List<LeasedJob>();
            var rows = 0;
            foreach (var job in group)
            {
                if (batch.Count > 0 && rows + job.Job.Spec.NetworkRows > maxRows)
                {
                    batches.Add(batch);
                    batch = [];
                    rows = 0;
                }
                batch.Add(job);
                rows += job.Job.Spec.NetworkRows;
            }
            batches.Add(batch);
        }
        return batches;
    }
}
