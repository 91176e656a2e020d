using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RinServe.Testing;

/// <summary>
/// A real redis-server on a free loopback port in a temp dir: without persistence, or with an append-only file.
/// Fails loudly when redis-server is missing: the test command installs it, so a skip would hide a broken setup.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _dir;
    private readonly string? _appendFsync;
    private Process? _process;

    public int Port { get; }
    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=2000,syncTimeout=2000,asyncTimeout=2000";

    private RedisServer(int port, string dir, string? appendFsync)
    {
        Port = port;
        _dir = dir;
        _appendFsync = appendFsync;
    }

    /// <param name="appendFsync">null: no persistence; <c>everysec</c> or <c>always</c>: AOF with that fsync policy, kept across restarts.</param>
    public static async Task<RedisServer> StartAsync(string? appendFsync = null)
    {
        var dir = Directory.CreateTempSubdirectory("rinserve-redis-").FullName;
        var server = new RedisServer(FreePort(), dir, appendFsync);
        await server.StartProcessAsync();
        return server;
    }

    public static string Executable()
    {
        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/local/bin"))
        {
            var candidate = Path.Combine(folder, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new InvalidOperationException(
            "redis-server was not found on PATH. These tests need a real Redis 7: install it with `apt-get install -y redis-server`.");
    }

    public async Task StartProcessAsync()
    {
        var info = new ProcessStartInfo(Executable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _dir,
        };
        string[] persistence = _appendFsync is null ? ["--appendonly", "no"] : ["--appendonly", "yes", "--appendfsync", _appendFsync];
        foreach (var arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--dir", _dir, "--protected-mode", "yes" }.Concat(persistence))
        {
            info.ArgumentList.Add(arg);
        }
        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited at start with code {_process.ExitCode} (port {Port})");
            }
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                var stream = client.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray());
                var buffer = new byte[16];
                var read = await stream.ReadAsync(buffer);
                if (read > 0 && buffer[0] == (byte)'+')
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }
            await Task.Delay(50);
        }
        throw new InvalidOperationException($"redis-server did not answer PING on port {Port} within 10 s");
    }

    /// <summary>Stops the server abruptly (SIGKILL), as a crash would.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
        _process?.Dispose();
        _process = null;
    }

    /// <summary>Stops the server gracefully (SIGTERM): with AOF it flushes the file first, as on a pod's rolling restart.</summary>
    public async Task TerminateAsync()
    {
        if (_process is { HasExited: false } p)
        {
            using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }
            await p.WaitForExitAsync();
        }
        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static int FreePort() => TestPaths.FreePort();
}
