using RinServe.Jobs;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The worker's step gate for in-process tests: holds every job it picks (<paramref name="holds"/>) after its first step
/// until <see cref="Open"/> (or until the job is canceled or the worker aborts), and tells the test which job it holds. Events both ways: no
/// test waits on a time.
/// </summary>
public sealed class HeldJobGate(Func<JobSpec, bool> holds) : IStepGate, IDisposable
{
    /// <summary>Holds the jobs of one class.</summary>
    public HeldJobGate(long gatedClass)
        : this(spec => spec.ClassId == gatedClass)
    {
    }

    private readonly TaskCompletionSource<string> _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim _open = new();

    /// <summary>The id of the first job held.</summary>
    public Task<string> Held => _held.Task;

    public void Open() => _open.Set();

    public void AfterStep(LeasedJob job, int step, CancellationToken released)
    {
        if (step != 1 || !holds(job.Job.Spec) || _open.IsSet)
        {
            return;
        }

        _held.TrySetResult(job.Id);
        WaitHandle.WaitAny([_open.WaitHandle, released.WaitHandle]);
    }

    public void Dispose()
    {
        _open.Set();
        _open.Dispose();
    }
}
