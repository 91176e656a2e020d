using System.Net.Sockets;
using System.Text;

namespace RinServe.WebApi.Tests;

/// <summary>One piece of a raw request, written after a pause (a slow client writes in pieces).</summary>
public readonly record struct Segment(byte[] Bytes, TimeSpan Delay);

/// <summary>How a raw exchange ended.</summary>
public enum RawOutcome
{
    /// <summary>A status line and headers came back.</summary>
    Answered,
    /// <summary>The server closed (or reset) the connection without a status line.</summary>
    ClosedWithoutAnswer,
    /// <summary>Neither an answer nor a close within the client's time limit: a hang.</summary>
    TimedOut,
}

/// <summary>An HTTP/1.1 answer as read off the socket (interim 1xx answers skipped, chunked bodies decoded).</summary>
public sealed record RawResponse(RawOutcome Outcome, int Status, IReadOnlyDictionary<string, string> Headers, byte[] Body, TimeSpan Elapsed)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;

    public string? MediaType => Header("content-type")?.Split(';')[0].Trim().ToLowerInvariant();

    public string BodyText => Encoding.UTF8.GetString(Body);
}

/// <summary>
/// A bare TCP client for requests HttpClient will not send: bad request lines, invalid header bytes,
/// broken chunking, lying Content-Length, stalls. Requests carry <c>Connection: close</c>, so the answer
/// is everything up to the server's close.
/// </summary>
public static class RawHttp
{
    public static async Task<RawResponse> SendAsync(int port, IReadOnlyList<Segment> segments, bool halfClose, TimeSpan timeout, bool head = false)
    {
        var started = DateTime.UtcNow;
        using var client = new TcpClient { NoDelay = true };
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await client.ConnectAsync("127.0.0.1", port, cts.Token);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return new RawResponse(RawOutcome.ClosedWithoutAnswer, 0, new Dictionary<string, string>(), [], DateTime.UtcNow - started);
        }
        var stream = client.GetStream();
        // Read while writing: a server may answer (413, 400) and close before a large body is sent.
        var reading = ReadAnswerAsync(stream, head, cts.Token);
        try
        {
            foreach (var segment in segments)
            {
                if (segment.Delay > TimeSpan.Zero)
                {
                    await Task.Delay(segment.Delay, cts.Token);
                }
                await stream.WriteAsync(segment.Bytes, cts.Token);
            }
            if (halfClose)
            {
                client.Client.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The server stopped reading (it answered or gave up on us); what it said is in the read.
        }
        var (bytes, closed) = await reading;
        var elapsed = DateTime.UtcNow - started;
        var parsed = Parse(bytes, elapsed, head);
        if (parsed is not null)
        {
            return parsed;
        }
        return new RawResponse(closed ? RawOutcome.ClosedWithoutAnswer : RawOutcome.TimedOut, 0, new Dictionary<string, string>(), bytes, elapsed);
    }

    /// <summary>
    /// Reads until the server closes or one final answer is complete (Kestrel may keep reading an unread
    /// request body for a while before it closes, which says nothing about the answer).
    /// </summary>
    private static async Task<(byte[] Bytes, bool Closed)> ReadAnswerAsync(NetworkStream stream, bool head, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(chunk, ct)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (IsComplete(buffer.ToArray(), head))
                {
                    return (buffer.ToArray(), true);
                }
            }
            return (buffer.ToArray(), true);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return (buffer.ToArray(), true); // reset by the server
        }
        catch (OperationCanceledException)
        {
            return (buffer.ToArray(), false);
        }
    }

    private static bool IsComplete(byte[] bytes, bool head)
    {
        if (Parse(bytes, TimeSpan.Zero, head) is not { } answer)
        {
            return false;
        }
        if (head || answer.Status is 204 or 304)
        {
            return true;
        }
        if (answer.Header("transfer-encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)
        {
            return bytes.AsSpan().EndsWith("\r\n0\r\n\r\n"u8) || bytes.AsSpan().EndsWith("\n0\r\n\r\n"u8);
        }
        return int.TryParse(answer.Header("content-length"), out var length) && answer.Body.Length >= length;
    }

    /// <summary>The first final (non-1xx) answer in the bytes, or null when there is no complete status line and header block.</summary>
    private static RawResponse? Parse(byte[] bytes, TimeSpan elapsed, bool head)
    {
        var offset = 0;
        while (true)
        {
            var end = IndexOf(bytes, "\r\n\r\n"u8, offset);
            if (end < 0)
            {
                return null;
            }
            var lines = Encoding.Latin1.GetString(bytes, offset, end - offset).Split("\r\n");
            var statusLine = lines[0].Split(' ', 3);
            if (statusLine.Length < 2 || !statusLine[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(statusLine[1], out var status))
            {
                return null;
            }
            var headers = new Dictionary<string, string>();
            foreach (var line in lines.Skip(1))
            {
                var colon = line.IndexOf(':');
                if (colon > 0)
                {
                    var name = line[..colon].Trim().ToLowerInvariant();
                    var value = line[(colon + 1)..].Trim();
                    headers[name] = headers.TryGetValue(name, out var earlier) ? earlier + ", " + value : value;
                }
            }
            offset = end + 4;
            if (status is >= 100 and < 200)
            {
                continue; // 100 Continue: the final answer follows
            }
            var body = head ? [] : bytes[offset..];
            if (headers.TryGetValue("transfer-encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            {
                body = Dechunk(body);
            }
            else if (headers.TryGetValue("content-length", out var cl) && int.TryParse(cl, out var length) && length <= body.Length)
            {
                body = body[..length];
            }
            return new RawResponse(RawOutcome.Answered, status, headers, body, elapsed);
        }
    }

    private static byte[] Dechunk(byte[] chunked)
    {
        using var body = new MemoryStream();
        var offset = 0;
        while (true)
        {
            var lineEnd = IndexOf(chunked, "\r\n"u8, offset);
            if (lineEnd < 0)
            {
                break;
            }
            var sizeText = Encoding.Latin1.GetString(chunked, offset, lineEnd - offset).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, System.Globalization.NumberStyles.HexNumber, null, out var size) || size == 0)
            {
                break;
            }
            var start = lineEnd + 2;
            var take = Math.Min(size, chunked.Length - start);
            body.Write(chunked, start, take);
            offset = start + size + 2;
            if (offset >= chunked.Length)
            {
                break;
            }
        }
        return body.ToArray();
    }

    private static int IndexOf(byte[] bytes, ReadOnlySpan<byte> what, int from)
    {
        var at = bytes.AsSpan(from).IndexOf(what);
        return at < 0 ? -1 : from + at;
    }
}
