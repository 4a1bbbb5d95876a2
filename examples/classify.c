/* classify: recognises the digit in a picture with a trained digitnet model.
 *
 *   classify MODEL.safetensors IMAGE.png
 *
 * prints "IMAGE: DIGIT (PROBABILITY)", the line `digitnet predict --top 1` prints. A small example of
 * the installed libraries, built with
 *
 *   cc classify.c $(pkg-config --cflags --libs digitnet-extra digitnet) -o classify
 *
 * libdigitnet loads the model and runs it; libdigitnet-extra decodes the picture and turns it into
 * what the network was trained on (MNIST's 28x28 or optdigits' 8x8). */
#include <digitnet.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, const dn_error *err)
{
    fprintf(stderr, "classify: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: classify MODEL IMAGE\n");
        return 2;
    }
    dn_error err = {0};
    dn_net *net = NULL;
    if (dn_model_load(argv[1], &net, &err) != DN_OK)
        return fail(argv[1], &err);

    dn_shape shape = dn_net_input_shape(net);
    dn_image img = {0};
    float *input = malloc((size_t)shape.h * shape.w * shape.c * sizeof *input); /* (1, h, w, c) */
    float probs[DN_N_CLASSES];
    int status = 1;
    if (!input)
        fprintf(stderr, "classify: out of memory\n");
    else if (dn_image_load(argv[2], 0, &img, &err) != DN_OK)
        fail(argv[2], &err);
    else if (dn_preprocess(&img, shape, input, &err) != DN_OK)
        fail(argv[2], &err);
    else if (dn_net_predict(net, input, 1, probs, &err) != DN_OK)
        fail("predict", &err);
    else {
        int best = 0;
        for (int k = 1; k < DN_N_CLASSES; k++)
            if (probs[k] > probs[best])
                best = k;
        printf("%s: %d (%.4f)\n", argv[2], best, probs[best]);
        status = 0;
    }
    free(input);
    dn_image_free(&img);
    dn_net_free(net);
    return status;
}
