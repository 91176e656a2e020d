namespace RinServe.Diffusion;

/// <summary>Work cut into slices that may run on different threads at once, in any order.</summary>
internal interface ISliceJob
{
    void RunSlice(int index);
}

/// <summary>
/// Runs the slices of a job on the calling thread and on up to <see cref="Helpers"/> pool threads: whoever is free takes
/// the next slice. A helper that starts late finds the slices taken, and the caller never waits for one that has not
/// started, so a busy pool costs nothing but the parallelism. Between network calls ONNX Runtime's threads are idle,
/// and an image-sized pass is memory-bound work that a second core speeds up. One instance per loop
/// (<see cref="RowStepper"/>), reused call after call: nothing is allocated per call. Not thread-safe.
/// </summary>
internal sealed class SliceWorkers : IDisposable
{
    private readonly Helper[] _helpers;
    private ISliceJob? _job;
    private int _count;
    private int _next;

    public SliceWorkers(int helpers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(helpers);
        _helpers = new Helper[helpers];
        for (var h = 0; h < helpers; h++)
        {
            _helpers[h] = new Helper(this);
        }
    }

    /// <summary>One helper per other core, at most 7 (an image-sized pass stops scaling long before).</summary>
    public static int DefaultHelpers => Math.Clamp(Environment.ProcessorCount - 1, 0, 7);

    public int Helpers => _helpers.Length;

    /// <summary>Runs slices 0..<paramref name="count"/> − 1 of <paramref name="job"/> and returns when all are done; rethrows a slice's error.</summary>
    public void Run(ISliceJob job, int count)
    {
        ArgumentNullException.ThrowIfNull(job);
        var helpers = Math.Min(_helpers.Length, count - 1);
        if (helpers <= 0)
        {
            for (var i = 0; i < count; i++)
            {
                job.RunSlice(i);
            }

            return;
        }

        _job = job;
        _count = count;
        Volatile.Write(ref _next, 0);
        for (var h = 0; h < helpers; h++)
        {
            _helpers[h].Queue();
        }

        Exception? error = null;
        try
        {
            Work();
        }
        catch (Exception e)
        {
            error = e;
            Volatile.Write(ref _next, count); // the helpers take no further slice
        }

        for (var h = 0; h < helpers; h++)
        {
            error ??= _helpers[h].CancelOrWait();
        }

        _job = null;
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    public void Dispose()
    {
        foreach (var helper in _helpers)
        {
            helper.CancelOrWait();
        }
    }

    private void Work()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _count)
        {
            _job!.RunSlice(i);
        }
    }

    /// <summary>One pool thread's share: queued per call; claimed by the pool thread, or withdrawn by the caller, whichever comes first.</summary>
    private sealed class Helper(SliceWorkers owner) : IThreadPoolWorkItem
    {
        private const int Idle = 0;
        private const int Queued = 1;
        private const int Claimed = 2;

        private readonly ManualResetEventSlim _done = new(initialState: true);
        private int _state = Idle;
        private Exception? _error;

        public void Queue()
        {
            _error = null;
            _done.Reset();
            Volatile.Write(ref _state, Queued);
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        /// <summary>Withdraws the helper if it has not started, else waits for it; returns its error, if any.</summary>
        public Exception? CancelOrWait()
        {
            if (Interlocked.CompareExchange(ref _state, Idle, Queued) == Queued)
            {
                _done.Set();
                return null;
            }

            _done.Wait();
            return _error;
        }

        public void Execute()
        {
            // A late work item (withdrawn, or one of an earlier call) finds the helper not queued and does nothing;
            // one that finds it queued again works for the current call, which is just as good.
            if (Interlocked.CompareExchange(ref _state, Claimed, Queued) != Queued)
            {
                return;
            }

            try
            {
                owner.Work();
            }
            catch (Exception e)
            {
                _error = e;
                Volatile.Write(ref owner._next, owner._count);
            }
            finally
            {
                Volatile.Write(ref _state, Idle);
                _done.Set();
            }
        }
    }
}
