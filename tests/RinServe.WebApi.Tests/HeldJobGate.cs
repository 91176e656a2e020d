using System.Collections.Concurrent;
using RinServe.Jobs;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The worker's step gate for in-process tests. Two kinds of hold, events both ways, so no test waits on a time:
/// <list type="bullet">
/// <item>the gate's own: every job it picks (<paramref name="holds"/>) is held after its first step until <see cref="Open"/>
/// (or until the job is canceled or the worker aborts), and <see cref="Held"/> names the first;</item>
/// <item>a test's own, one job at a time (<see cref="HoldSeed"/>): the job of a seed, at a given step or the next one it
/// takes, with a handle of its own. A test class that shares one service (and so one gate) gives each test its own seed.</item>
/// </list>
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
    private readonly ConcurrentDictionary<ulong, Hold> _seedHolds = new();

    /// <summary>The id of the first job held.</summary>
    public Task<string> Held => _held.Task;

    public void Open() => _open.Set();

    /// <summary>
    /// Holds the job of <paramref name="seed"/> after step <paramref name="atStep"/> (or after the next step it takes, when
    /// null) until the returned hold is opened or disposed, the job is canceled, or the worker aborts. One hold a seed at
    /// a time: once reached, a new one may be set for the same job.
    /// </summary>
    public Hold HoldSeed(ulong seed, int? atStep = null)
    {
        var hold = new Hold(atStep);
        if (!_seedHolds.TryAdd(seed, hold))
        {
            throw new InvalidOperationException($"seed {seed} already has a hold that its job has not reached");
        }
        return hold;
    }

    public void AfterStep(LeasedJob job, int step, CancellationToken released)
    {
        var seed = job.Job.Spec.Seed;
        if (_seedHolds.TryGetValue(seed, out var hold) && hold.HoldsAt(step)
            && _seedHolds.TryRemove(new KeyValuePair<ulong, Hold>(seed, hold)))
        {
            hold.Wait(job.Id, step, released);
            return;
        }
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
        foreach (var hold in _seedHolds.Values)
        {
            hold.Open();
        }
    }

    /// <summary>One test's hold on one job (<see cref="HoldSeed"/>).</summary>
    public sealed class Hold(int? atStep) : IDisposable
    {
        private readonly TaskCompletionSource<string> _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ManualResetEventSlim _open = new();

        /// <summary>The id of the job, once the worker holds it (it is then surely running, at the hold's step).</summary>
        public Task<string> Held => _reached.Task;

        /// <summary>The step the job is held after (known once <see cref="Held"/> is done).</summary>
        public int Step { get; private set; }

        public void Open() => _open.Set();

        internal bool HoldsAt(int step) => !_open.IsSet && (atStep is null || atStep == step);

        internal void Wait(string jobId, int step, CancellationToken released)
        {
            Step = step;
            _reached.TrySetResult(jobId);
            WaitHandle.WaitAny([_open.WaitHandle, released.WaitHandle]);
        }

        /// <summary>Lets the job go on, whether or not it was reached.</summary>
        public void Dispose() => _open.Set();
    }
}
