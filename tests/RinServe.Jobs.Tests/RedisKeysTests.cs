using System.Security.Cryptography;
using System.Text;

namespace RinServe.Jobs.Tests;

/// <summary>The Redis data layout's names, which deployments, KEDA and operators rely on: they must not drift.</summary>
public sealed class RedisKeysTests
{
    private static readonly RedisKeys Keys = new("rin:");

    [Fact]
    public void Keys_and_channels_have_their_documented_names()
    {
        Assert.Equal("workers", RedisKeys.ConsumerGroup);
        Assert.Equal("rin:q:fmnist-64", Keys.Stream("fmnist-64").ToString());
        Assert.Equal("rin:job:abc", Keys.Job("abc").ToString());
        Assert.Equal("rin:pv:abc", Keys.Preview("abc").ToString());
        Assert.Equal("rin:img:abc:0", Keys.Image("abc", 0).ToString());
        Assert.Equal("rin:img:abc:12", Keys.Image("abc", 12).ToString());
        Assert.Equal("rin:dead", Keys.DeadLetter.ToString());
        Assert.Equal("rin:idem:none", Keys.NoIdempotency.ToString());
        Assert.Equal("rin:ev:abc", Keys.Events("abc"));
        Assert.Equal("rin:wake:fmnist-64", Keys.Wake("fmnist-64"));
    }

    [Fact]
    public void Idempotency_keys_are_the_sha256_of_owner_and_key_so_any_header_text_gives_a_short_safe_key()
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("owner\nmy key")));
        Assert.Equal("rin:idem:" + hash, Keys.Idempotency("owner", "my key").ToString());
        Assert.Equal(Keys.Idempotency(null, "k").ToString(), Keys.Idempotency("", "k").ToString());
        Assert.NotEqual(Keys.Idempotency("a", "k").ToString(), Keys.Idempotency("b", "k").ToString());
    }
}
