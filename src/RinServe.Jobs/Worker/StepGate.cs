using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RinServe.Jobs;

/// <summary>
/// Section <c>Testing</c>: hooks for drills, all off by default. A production deployment sets none of them.
/// </summary>
public sealed class TestingOptions
{
    public const string Section = "Testing";

    /// <summary>
    /// A named pipe (FIFO) that holds jobs of <see cref="StepGateClass"/> after their first step until a drill writes one
    /// line to it per job (<see cref="FifoStepGate"/>). Empty: no gate.
    /// </summary>
    public string? StepGate { get; set; }

    /// <summary>The class whose jobs the gate holds; unset: every job.</summary>
    public long? StepGateClass { get; set; }
}

/// <summary>
/// Where the worker lets a test hold a running batch after a step: <see cref="FifoStepGate"/> for drills on real processes,
/// a test's own implementation in process. Called on the sampler's thread after each step of each running job, its
/// progress already reported; while it blocks, the worker makes no step (the heartbeat goes on).
/// </summary>
public interface IStepGate
{
    /// <summary>Returns when the worker may go on: at once, unless a test holds the job; early when <paramref name="released"/> fires (the job was canceled, or the shutdown timeout ran out).</summary>
    void AfterStep(LeasedJob job, int step, CancellationToken released);
}

/// <summary>
/// Lets a drill hold a running job at a step boundary for as long as it needs (a SIGTERM, a kill, a Redis restart while
/// the job is running) and release it with an event, instead of hoping that a job of many steps is still running after
/// some milliseconds (tests that wait on time fail on fast machines). After the first step of each job of the gated
/// class (every job when no class is set), the worker logs "Step gate: holding job ID" and blocks reading one line from the FIFO; the drill waits for that
/// line in the log and writes a line to let the job go on. The heartbeat keeps the job's lease meanwhile. A blocked read
/// does not see the job's cancellation: a drill that holds a job must release it.
/// </summary>
public sealed class FifoStepGate(IOptions<TestingOptions> options, ILogger<FifoStepGate> logger) : IStepGate
{
    private readonly string? _path = string.IsNullOrWhiteSpace(options.Value.StepGate) ? null : options.Value.StepGate;
    private readonly long? _class = options.Value.StepGateClass;

    public bool Enabled => _path is not null;

    public void AfterStep(LeasedJob job, int step, CancellationToken released)
    {
        if (_path is null || step != 1 || (_class is { } gated && job.Job.Spec.ClassId != gated))
        {
            return;
        }

        logger.LogWarning("Step gate: holding job {JobId} after step 1 until a line is written to {Gate}", job.Id, _path);
        using var reader = new StreamReader(_path); // a FIFO: opening waits for a writer, reading for its line
        reader.ReadLine();
        logger.LogWarning("Step gate: released job {JobId}", job.Id);
    }
}
